package ordernotify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

func TestFactsStage(t *testing.T) {
	t.Parallel()
	ful := func(id, status, shipment string, tracking bool) commerce.Fulfillment {
		f := commerce.Fulfillment{ID: id, Status: status, ShipmentStatus: shipment, UpdatedAt: t0}
		if tracking {
			f.TrackingNumber = "TRK" + id
		}
		return f
	}
	o := func(mutate ...func(*commerce.Order)) *commerce.Order {
		x := order(0, mutate...)
		return &x
	}
	tests := map[string]struct {
		facts Facts
		want  Kind // "" for none
	}{
		"nothing known":            {Facts{}, ""},
		"order placed":             {Facts{Order: o()}, KindConfirmation},
		"fulfillment w/o tracking": {Facts{Order: o(), Fulfillments: []commerce.Fulfillment{ful("1", "success", "", false)}}, KindConfirmation},
		"label printed":            {Facts{Order: o(), Fulfillments: []commerce.Fulfillment{ful("1", "open", commerce.ShipmentLabelPrinted, false)}}, KindConfirmation},
		"order fulfilled w/o tracking": {Facts{Order: o(func(x *commerce.Order) { x.FulfillmentStatus = "fulfilled" }),
			Fulfillments: []commerce.Fulfillment{ful("1", "success", "", false)}}, KindShipped},
		"tracking":            {Facts{Order: o(), Fulfillments: []commerce.Fulfillment{ful("1", "success", "", true)}}, KindShipped},
		"in transit":          {Facts{Fulfillments: []commerce.Fulfillment{ful("1", "success", commerce.ShipmentInTransit, false)}}, KindShipped},
		"out for delivery":    {Facts{Order: o(), Fulfillments: []commerce.Fulfillment{ful("1", "success", commerce.ShipmentOutForDelivery, true)}}, KindOutForDelivery},
		"delivered":           {Facts{Order: o(), Fulfillments: []commerce.Fulfillment{ful("1", "success", commerce.ShipmentDelivered, true)}}, KindDelivered},
		"delivered, no order": {Facts{Fulfillments: []commerce.Fulfillment{ful("1", "success", commerce.ShipmentDelivered, true)}}, KindDelivered},
		"one of two delivered": {Facts{Order: o(), Fulfillments: []commerce.Fulfillment{
			ful("1", "success", commerce.ShipmentDelivered, true), ful("2", "success", commerce.ShipmentInTransit, true)}}, KindShipped},
		"delivered, more to ship": {Facts{Order: o(func(x *commerce.Order) { x.FulfillmentStatus = "partial" }),
			Fulfillments: []commerce.Fulfillment{ful("1", "success", commerce.ShipmentDelivered, true)}}, KindShipped},
		"delivered, other cancelled": {Facts{Order: o(), Fulfillments: []commerce.Fulfillment{
			ful("1", "success", commerce.ShipmentDelivered, true), ful("2", "cancelled", commerce.ShipmentInTransit, true)}}, KindDelivered},
		"only a cancelled shipment": {Facts{Order: o(), Fulfillments: []commerce.Fulfillment{ful("1", "cancelled", commerce.ShipmentInTransit, true)}}, KindConfirmation},
		"cancelled":                 {Facts{Order: o(cancelled), Fulfillments: []commerce.Fulfillment{ful("1", "success", commerce.ShipmentDelivered, true)}}, KindCancelled},
		"refunded by status":        {Facts{Order: o(isPaid, refunded)}, KindRefunded},
		"refunded by amount":        {Facts{Order: o(isPaid, func(x *commerce.Order) { x.RefundedAmount = "49.900" })}, KindRefunded},
		"partially refunded": {Facts{Order: o(func(x *commerce.Order) {
			x.FinancialStatus, x.RefundedAmount = commerce.FinancialPartiallyRefunded, "10.00"
		})}, KindConfirmation},
		"cancelled and refunded": {Facts{Order: o(cancelled, refunded)}, KindRefunded},
		"deleted":                {Facts{Order: o(), Deleted: true}, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, ok := tc.facts.Stage()
			if ok != (tc.want != "") || got != tc.want {
				t.Errorf("Stage() = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

func TestFactsApplyMerges(t *testing.T) {
	t.Parallel()
	var f Facts
	newer := order(10, isPaid)
	older := order(5)
	older.Name = "#stale"
	for _, ev := range []OrderEvent{
		event(commerce.EventOrderUpdated, newer),
		event(commerce.EventOrderCreated, older),
		fulfilled(30, commerce.ShipmentDelivered),
		fulfilled(20, commerce.ShipmentInTransit),
	} {
		if err := f.Apply(ev); err != nil {
			t.Fatalf("Apply(%s): %v", ev.Type, err)
		}
	}
	if f.Order.Name != "#1001" || f.Order.FinancialStatus != commerce.FinancialPaid {
		t.Errorf("the stale order replaced the newer: %+v", f.Order)
	}
	if len(f.Fulfillments) != 1 || f.Fulfillments[0].ShipmentStatus != commerce.ShipmentDelivered {
		t.Errorf("fulfillments %+v, want f1 delivered", f.Fulfillments)
	}
	for _, bad := range []OrderEvent{
		{Type: commerce.EventOrderUpdated, Payload: json.RawMessage(`{"id":`)},
		{Type: commerce.EventCheckoutUpdated, Payload: json.RawMessage(`{}`)},
	} {
		if err := f.Apply(bad); err == nil {
			t.Errorf("Apply(%s %s) = nil, want an error saying why it was ignored", bad.Type, bad.Payload)
		}
	}
}

func TestDetails(t *testing.T) {
	t.Parallel()
	var f Facts
	o := order(0, isPaid)
	o.LineItems = append(o.LineItems, commerce.LineItem{Title: "Shirt", VariantTitle: "L", Quantity: 1})
	second := fulfillment(10, commerce.ShipmentOutForDelivery)
	second.ID, second.TrackingNumber, second.TrackingCompany, second.TrackingURL = "f2", "TRK9", "GLS", ""
	_ = f.Apply(event(commerce.EventOrderUpdated, o))
	_ = f.Apply(event(commerce.EventFulfillmentCreated, fulfillment(5, commerce.ShipmentInTransit)))
	_ = f.Apply(event(commerce.EventFulfillmentCreated, second))
	want := Details{Phone: phone, Name: "Maria", OrderName: "#1001", Total: "49.90 EUR",
		Items: "2× Blue mug, Tea, Shirt (L)", StatusURL: "https://shop.example/orders/abc", Paid: true,
		Carrier: "GLS", TrackingNo: "TRK9"}
	if diff := cmp.Diff(want, f.Details(KindOutForDelivery)); diff != "" {
		t.Errorf("out for delivery details (-want +got):\n%s", diff)
	}
	want.Carrier, want.TrackingNo, want.TrackingURL = "BRT", "TRK123", "https://brt.example/t/TRK123"
	if diff := cmp.Diff(want, f.Details(KindShipped)); diff != "" {
		t.Errorf("shipped details (-want +got):\n%s", diff)
	}
	// A fulfillment event's contact stands in until the order is known.
	var g Facts
	fl := fulfillment(5, commerce.ShipmentInTransit)
	fl.Contact = &commerce.Contact{Phone: "+391234", FirstName: "Ugo"}
	_ = g.Apply(event(commerce.EventFulfillmentCreated, fl))
	if d := g.Details(KindShipped); d.Phone != "+391234" || d.Name != "Ugo" || d.PhoneProblem != "" {
		t.Errorf("details from a fulfillment's contact: %+v", d)
	}
	var none Facts
	if d := none.Details(KindShipped); d.PhoneProblem != commerce.PhoneMissing {
		t.Errorf("no contact at all: phone problem %q, want %q", d.PhoneProblem, commerce.PhoneMissing)
	}
}

func TestItemsTextIsBounded(t *testing.T) {
	t.Parallel()
	var items []commerce.LineItem
	for i := range 100 {
		items = append(items, commerce.LineItem{Title: fmt.Sprintf("Product number %d", i), Quantity: 1})
	}
	got := itemsText(items)
	if len([]rune(got)) > maxItemsText+20 || !strings.HasSuffix(got, " more") {
		t.Errorf("itemsText of 100 lines = %q (%d runes)", got, len([]rune(got)))
	}
}

func TestRender(t *testing.T) {
	t.Parallel()
	vals := map[string]string{VarName: "Maria", VarOrder: "#1001", VarTrackingURL: "https://t.example/1",
		VarItems: "2× Mug,\n\tTea     and    more", VarCarrier: ""}
	m := &Message{Template: "order_shipped", Language: "it", Variables: []string{VarName, VarCarrier, VarItems}}
	tmpl, err := renderTemplate(m, vals)
	if err != nil {
		t.Fatal(err)
	}
	want := &messaging.Template{Name: "order_shipped", Language: "it", Params: []string{"Maria", "-", "2× Mug, Tea and more"}}
	if diff := cmp.Diff(want, tmpl); diff != "" {
		t.Errorf("template (-want +got):\n%s", diff)
	}
	m.Variables, m.ButtonURLVariable = nil, VarOrder
	tmpl, _ = renderTemplate(m, vals)
	if string(tmpl.Components) != `[{"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"#1001"}]}]` || tmpl.Params != nil {
		t.Errorf("button-only template: %s %v", tmpl.Components, tmpl.Params)
	}
	got := renderText("Ciao {{name}}, ordine {{ order }}: {{tracking_url}} {{carrier}}{{unknown}}", vals)
	if want := "Ciao Maria, ordine #1001: https://t.example/1 {{unknown}}"; got != want {
		t.Errorf("renderText = %q, want %q", got, want)
	}
	// tracking_url falls back to the order status page.
	if v := values(Details{StatusURL: "https://s.example"}, Settings{}); v[VarTrackingURL] != "https://s.example" {
		t.Errorf("tracking_url without a carrier page = %q", v[VarTrackingURL])
	}
}

func TestDefaultSettingsValid(t *testing.T) {
	t.Parallel()
	if err := DefaultSettings().Validate(); err != nil {
		t.Errorf("DefaultSettings().Validate() = %v", err)
	}
	if DefaultSettings().Enabled {
		t.Errorf("defaults enabled before a number is chosen")
	}
	// The defaults survive a JSON round trip unchanged (stored with
	// core/automations).
	b, err := json.Marshal(DefaultSettings())
	if err != nil {
		t.Fatal(err)
	}
	var back Settings
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(DefaultSettings(), back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestSettingsJSON(t *testing.T) {
	t.Parallel()
	raw := `{"enabled":true,"channel_connection_id":"con_wa","confirm_on":"paid","free_text_in_window":true,
		"shipped":{"template":"order_shipped","language":"it","variables":["name","tracking_url"],"button_url_variable":"tracking_number","free_text":"Ciao {{name}}"},
		"review_request":{"template":"review","language":"it","after":"2s","review_url":"https://shop.example/r"}}`
	var s Settings
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if d, _ := s.ReviewRequest.After.Parse(); d != 2*time.Second || s.reviewDelay() != 2*time.Second {
		t.Errorf("review after %v", d)
	}
	if s.Shipped.ButtonURLVariable != VarTrackingNumber || s.message(KindReviewRequest).Template != "review" {
		t.Errorf("decoded %+v", s)
	}
}

func TestSettingsValidate(t *testing.T) {
	t.Parallel()
	msg := func(mutate func(*Message)) *Message {
		m := &Message{Template: "order_shipped", Language: "en", Variables: []string{VarName}}
		mutate(m)
		return m
	}
	tests := map[string]struct {
		mutate func(*Settings)
		want   []FieldProblem
	}{
		"valid": {func(*Settings) {}, nil},
		"confirm_on missing": {func(s *Settings) { s.ConfirmOn = "" },
			[]FieldProblem{{Field: "confirm_on", Message: `is required: "created" or "paid"`}}},
		"confirm_on wrong": {func(s *Settings) { s.ConfirmOn = "shipped" },
			[]FieldProblem{{Field: "confirm_on", Message: `must be "created" or "paid", not "shipped"`}}},
		// No number: any of the tenant's numbers sends.
		"enabled without number":  {func(s *Settings) { s.ChannelConnectionID = "" }, nil},
		"disabled without number": {func(s *Settings) { s.Enabled, s.ChannelConnectionID = false, "" }, nil},
		"message problems": {func(s *Settings) {
			s.Shipped = msg(func(m *Message) {
				m.Template, m.Language, m.Variables, m.ButtonURLVariable = "Order Shipped", "english", []string{"name", "eta"}, "coupon"
				m.FreeText = "Hi {{name}}, ETA {{eta}}"
			})
		}, []FieldProblem{
			{Field: "shipped.template", Message: "must be a WhatsApp template name: lowercase letters, digits and underscores"},
			{Field: "shipped.language", Message: `"english" is not a WhatsApp language code, like "en" or "en_US"`},
			{Field: "shipped.variables[1]", Message: `unknown variable "eta"; one of ` + strings.Join(Variables, ", ")},
			{Field: "shipped.button_url_variable", Message: `unknown variable "coupon"; one of ` + strings.Join(Variables, ", ")},
			{Field: "shipped.free_text", Message: "unknown placeholder {{eta}}; use one of " + strings.Join(Variables, ", ")},
		}},
		"template required": {func(s *Settings) { s.Cancelled = msg(func(m *Message) { m.Template, m.Language = "", "" }) },
			[]FieldProblem{
				{Field: "cancelled.template", Message: "is required: outside the 24-hour window only an approved template can be sent"},
				{Field: "cancelled.language", Message: `is required, like "en" or "it" or "en_US"`},
			}},
		"too long free text": {func(s *Settings) {
			s.Delivered = msg(func(m *Message) { m.FreeText = strings.Repeat("é", MaxFreeText+1) })
		},
			[]FieldProblem{{Field: "delivered.free_text", Message: "must be at most 4096 characters, is 4097"}}},
		"review problems": {func(s *Settings) {
			s.ReviewRequest = &ReviewRequest{Message: *msg(func(m *Message) { m.Variables = []string{VarReviewURL} }), After: "3 days", ReviewURL: "shop.example/review"}
		}, []FieldProblem{
			{Field: "review_request.after", Message: `"3 days" is not a duration; write it like "72h" or "90m"`},
			{Field: "review_request.review_url", Message: "must be an http(s) URL"},
		}},
		"review without delay or url": {func(s *Settings) {
			s.ReviewRequest = &ReviewRequest{Message: *msg(func(m *Message) { m.ButtonURLVariable = VarReviewURL })}
		}, []FieldProblem{
			{Field: "review_request.after", Message: `is required: how long after the delivery to ask, like "72h"`},
			{Field: "review_request.review_url", Message: "is required: a message uses the review_url variable"},
		}},
		"review too late": {func(s *Settings) { s.ReviewRequest = &ReviewRequest{Message: *msg(func(*Message) {}), After: "2200h"} },
			[]FieldProblem{{Field: "review_request.after", Message: "must be at most 2160h0m0s (90 days)"}}},
		"review url without review": {func(s *Settings) { s.Delivered = msg(func(m *Message) { m.FreeText = "Rate us: {{review_url}}" }) },
			[]FieldProblem{{Field: "review_request.review_url", Message: "is required: a message uses the review_url variable"}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := testSettings()
			tc.mutate(&s)
			err := s.Validate()
			var got []FieldProblem
			var ve *store.ValidationError
			if errors.As(err, &ve) {
				got = ve.Problems
			} else if err != nil {
				t.Fatalf("Validate() = %v, want a *ValidationError", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// settingsByConn loads settings per connection.
type settingsByConn map[string]Settings

func (m settingsByConn) Load(_ context.Context, _, conn string) (Settings, bool, error) {
	if conn == "con_broken" {
		return Settings{}, false, errors.New("database down")
	}
	s, ok := m[conn]
	return s, ok, nil
}

func TestRoute(t *testing.T) {
	t.Parallel()
	off := testSettings()
	off.Enabled = false
	r := Route(settingsByConn{"con_shop": testSettings(), "con_off": off}, "ponte")
	ev := func(conn, typ string, corr map[string]string) dispatch.Event {
		return dispatch.Event{ID: 7, TenantID: "ten_1", ConnectionID: conn, Type: typ, OccurredAt: t0,
			Correlation: corr, Payload: json.RawMessage(`{"id":"5001"}`)}
	}
	byOrder := map[string]string{commerce.CorrelationOrder: "5001", commerce.CorrelationCheckout: "chk_1"}
	tests := map[string]struct {
		ev      dispatch.Event
		want    int
		signal  bool
		wantErr bool
	}{
		"order created":         {ev: ev("con_shop", commerce.EventOrderCreated, byOrder), want: 1},
		"fulfillment updated":   {ev: ev("con_shop", commerce.EventFulfillmentUpdated, byOrder), want: 1},
		"order deleted":         {ev: ev("con_shop", commerce.EventOrderDeleted, byOrder), want: 1, signal: true},
		"disabled":              {ev: ev("con_off", commerce.EventOrderCreated, byOrder), want: 0},
		"no settings":           {ev: ev("con_other", commerce.EventOrderCreated, byOrder), want: 0},
		"no order correlation":  {ev: ev("con_shop", commerce.EventOrderCreated, map[string]string{"checkout": "x"}), want: 0},
		"checkout event":        {ev: ev("con_shop", commerce.EventCheckoutUpdated, byOrder), want: 0},
		"settings unavailable":  {ev: ev("con_broken", commerce.EventOrderPaid, byOrder), wantErr: true},
		"customer event":        {ev: ev("con_shop", commerce.EventCustomerUpdated, byOrder), want: 0},
		"order paid":            {ev: ev("con_shop", commerce.EventOrderPaid, byOrder), want: 1},
		"fulfillment created":   {ev: ev("con_shop", commerce.EventFulfillmentCreated, byOrder), want: 1},
		"order cancelled":       {ev: ev("con_shop", commerce.EventOrderCancelled, byOrder), want: 1},
		"refund of the order":   {ev: ev("con_shop", commerce.EventOrderRefunded, byOrder), want: 1},
		"fulfilled by the shop": {ev: ev("con_shop", commerce.EventOrderFulfilled, byOrder), want: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ds, err := r.Route(context.Background(), tc.ev)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Route = %v, want error %v", err, tc.wantErr)
			}
			if len(ds) != tc.want {
				t.Fatalf("Route gave %d deliveries, want %d", len(ds), tc.want)
			}
			if tc.want == 0 {
				return
			}
			d := ds[0]
			wantArg := OrderEvent{EventID: 7, Type: tc.ev.Type, OccurredAt: t0, Payload: tc.ev.Payload}
			if d.WorkflowID != "ordernotify/ten_1/con_shop/5001" || d.WorkflowType != WorkflowType || d.TaskQueue != "ponte" ||
				d.SignalName != SignalOrderEvent || d.SignalOnly != tc.signal || !cmp.Equal(d.SignalArg, wantArg) ||
				!cmp.Equal(d.StartArgs, []any{WorkflowInput{OrderRef: ref1}}) {
				t.Errorf("delivery %+v", d)
			}
			if tc.signal && (d.IfNotRunning == nil || d.IfNotRunning(context.Background()) != nil) {
				t.Errorf("order.deleted for a finished workflow must be a quiet no-op")
			}
		})
	}
}
