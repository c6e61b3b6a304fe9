package consent

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

// shopEvent is a customer.updated event as a shop connector emits it.
func (e *env) shopEvent(id int64, phone, state, level string, at *time.Time) dispatch.Event {
	payload, _ := json.Marshal(commerce.Customer{
		ID: "cust_1", Contact: commerce.Contact{Phone: phone},
		MarketingConsent: &commerce.MarketingConsent{State: state, OptInLevel: level, UpdatedAt: at},
	})
	return dispatch.Event{ID: id, TenantID: e.tenantA, ConnectionID: e.connA, Connector: "shopify",
		DedupeKey: fmt.Sprint("wh_", id), Type: commerce.EventCustomerUpdated, OccurredAt: time.Now().Truncate(time.Second), Payload: payload}
}

func (e *env) applyShop(t *testing.T, ev dispatch.Event) int {
	t.Helper()
	ds, err := ShopRoute(e.svc).Route(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if err := d.Apply(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return len(ds)
}

// A shop's phone marketing consent reaches the ledger once per change, as
// evidence with the shop as source, and never undoes a newer STOP.
func TestIntegrationShopConsent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	contactID, phone := e.contact(t, e.tenantA)
	t1 := time.Now().Add(-2 * time.Hour).Truncate(time.Second).UTC()

	type rec struct{ Action, Source, Method string }
	history := func() []rec {
		t.Helper()
		cc, err := e.svc.ContactConsent(ctx, e.tenantA, contactID)
		if err != nil {
			t.Fatal(err)
		}
		var out []rec
		for _, r := range cc.History {
			out = append(out, rec{r.Action, r.Source, r.Method})
		}
		return out
	}

	// Subscribed, delivered twice and repeated by a later customer update
	// with the same consent timestamp: one opt-in.
	e.applyShop(t, e.shopEvent(1, phone, commerce.ConsentSubscribed, "confirmed_opt_in", &t1))
	e.applyShop(t, e.shopEvent(1, phone, commerce.ConsentSubscribed, "confirmed_opt_in", &t1))
	e.applyShop(t, e.shopEvent(2, phone, commerce.ConsentSubscribed, "confirmed_opt_in", &t1))
	if diff := cmp.Diff([]rec{{ActionOptIn, "shopify", "double_opt_in"}}, history()); diff != "" {
		t.Fatalf("after subscribed x3 (-want +got):\n%s", diff)
	}
	d, err := e.svc.Check(ctx, CheckRequest{TenantID: e.tenantA, ContactID: contactID, Purpose: PurposeMarketing})
	if err != nil || !d.Allowed {
		t.Fatalf("marketing after the shop's opt-in: %+v %v", d, err)
	}

	// A STOP on WhatsApp, then the shop repeats its older "subscribed":
	// still opted out.
	e.record(t, e.tenantA, contactID, ActionOptOut, t1.Add(time.Hour), PurposeMarketing, PurposeUtility)
	e.applyShop(t, e.shopEvent(3, phone, commerce.ConsentSubscribed, "confirmed_opt_in", &t1))
	d, err = e.svc.Check(ctx, CheckRequest{TenantID: e.tenantA, ContactID: contactID, Purpose: PurposeMarketing})
	if err != nil || d.Allowed || d.Reason != ReasonOptedOut {
		t.Fatalf("marketing after STOP and a stale shop opt-in: %+v %v", d, err)
	}

	// Not a decision: nothing routed.
	if n := e.applyShop(t, e.shopEvent(4, phone, commerce.ConsentNotSubscribed, "", nil)); n != 0 {
		t.Errorf("not_subscribed routed %d deliveries", n)
	}
	if n := e.applyShop(t, e.shopEvent(5, "", commerce.ConsentSubscribed, "", &t1)); n != 0 {
		t.Errorf("consent without a phone routed %d deliveries", n)
	}

	// A newer unsubscribe from the shop is recorded.
	t2 := time.Now().Add(-time.Minute).Truncate(time.Second).UTC()
	e.applyShop(t, e.shopEvent(6, phone, commerce.ConsentUnsubscribed, "single_opt_in", &t2))
	// The marketing history, newest first (the STOP also wrote a utility
	// record, left out here).
	want := []rec{{ActionOptOut, "shopify", "single_opt_in"}, {ActionOptOut, "test", ""}, {ActionOptIn, "shopify", "double_opt_in"}}
	cc, err := e.svc.ContactConsent(ctx, e.tenantA, contactID)
	if err != nil {
		t.Fatal(err)
	}
	var got []rec
	for _, r := range cc.History {
		if r.Purpose == PurposeMarketing {
			got = append(got, rec{r.Action, r.Source, r.Method})
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("marketing history (-want +got):\n%s", diff)
	}
}
