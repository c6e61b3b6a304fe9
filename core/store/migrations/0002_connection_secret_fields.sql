-- The names of a connection's secret fields that hold a value, so the API can
-- say which secrets are set without opening the sealed blob (and without the
-- master key on the read path).
ALTER TABLE connections ADD COLUMN secret_fields text[] NOT NULL DEFAULT '{}';
