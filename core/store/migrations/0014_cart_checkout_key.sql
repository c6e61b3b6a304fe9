-- A cart is unique per shop connection and checkout. A connection belongs to
-- one tenant, so this is the uniqueness (tenant_id, connection_id,
-- checkout_id) had, with the connection first: a lookup can then compare the
-- tenant in a way no index serves and find the cart by this key alone. With
-- the tenant first, a plan Postgres made while the table was empty could
-- take any (tenant_id, ...) index and scan every cart of the tenant for each
-- checkout event (workflows/cartrecovery, TestIntegrationCartPlansUseKeys).
ALTER TABLE cart_recoveries DROP CONSTRAINT cart_recoveries_tenant_id_connection_id_checkout_id_key;
ALTER TABLE cart_recoveries ADD CONSTRAINT cart_recoveries_checkout_key UNIQUE (connection_id, checkout_id);
