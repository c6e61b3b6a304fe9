package contacts_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/ponte-hub/ponte/core/contacts"
	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

// Shop customers become contacts with their shop id, from customer events
// and from orders; events without a phone create nothing.
func TestIntegrationShopCustomers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	apply := func(typ string, payload any) int {
		t.Helper()
		b, _ := json.Marshal(payload)
		ds, err := e.svc.ShopRoute().Route(ctx, dispatch.Event{ID: 1, TenantID: e.tenant, ConnectionID: e.conn,
			Connector: "shopify", Type: typ, OccurredAt: time.Now(), Payload: b})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if err := d.Apply(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return len(ds)
	}
	apply(commerce.EventCustomerCreated, commerce.Customer{ID: "7001", Contact: commerce.Contact{Phone: "+393331112222", FirstName: "Anna", LastName: "Verdi"}})
	apply(commerce.EventOrderCreated, commerce.Order{ID: "9", Contact: commerce.Contact{Phone: "+393334445555", CustomerID: "7002", FirstName: "Luca"}})
	if n := apply(commerce.EventCustomerUpdated, commerce.Customer{ID: "7003", Contact: commerce.Contact{Email: "x@example.com"}}); n != 0 {
		t.Errorf("a customer without a phone routed %d deliveries", n)
	}
	for phone, want := range map[string]struct{ name, id string }{
		"+393331112222": {"Anna Verdi", "7001"},
		"+393334445555": {"Luca", "7002"},
	} {
		c, err := e.svc.Resolve(ctx, e.tenant, phone, contacts.ContactHints{})
		if err != nil {
			t.Fatal(err)
		}
		if c.Name != want.name || c.ExternalIDs["shopify_customer"] != want.id {
			t.Errorf("%s: name %q external ids %v, want %q and shopify_customer %s", phone, c.Name, c.ExternalIDs, want.name, want.id)
		}
	}
}
