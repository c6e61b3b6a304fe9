package shopify

import (
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

const testWebhookID = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"

var triggeredAt = time.Date(2025, 6, 16, 8, 0, 27, 877041743, time.UTC)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func utcPtr(s string) *time.Time { t := utc(s); return &t }

// TestWebhookNormalization replays Shopify-shaped deliveries of every topic
// through the real gRPC boundary and checks the whole normalized payload.
func TestWebhookNormalization(t *testing.T) {
	t.Parallel()
	annaConsent := &commerce.MarketingConsent{State: "subscribed", OptInLevel: "single_opt_in", UpdatedAt: utcPtr("2025-06-16T07:52:40Z"), Source: "shopify"}
	maglietta := []commerce.LineItem{{Title: "Maglietta", VariantTitle: "M / Blu", SKU: "TS-M-BLU", ProductID: "632910392", VariantID: "49148385", Quantity: 2, Price: "19.90"}}
	tests := map[string]struct {
		fixture, topic string
		wantType       string
		wantCorr       map[string]string
		decode         func(json.RawMessage) (any, error)
		want           any
	}{
		"checkout created, national phone read with the address country": {
			fixture: "checkouts_create.json", topic: "checkouts/create", wantType: commerce.EventCheckoutCreated,
			wantCorr: map[string]string{"checkout": "bd5a8aa1ecd019dd3520ff791ee3a24c", "customer": "706405506930370084", "phone": "+393331234567"},
			decode:   decodeAs[commerce.Checkout],
			want: commerce.Checkout{
				ID: "bd5a8aa1ecd019dd3520ff791ee3a24c",
				Contact: commerce.Contact{Phone: "+393331234567", Email: "anna.rossi@example.com", FirstName: "Anna", LastName: "Rossi",
					CustomerID: "706405506930370084", Country: "IT", Locale: "it"},
				Currency: "EUR", Subtotal: "39.80", Total: "39.80", LineItems: maglietta,
				RecoveryURL:      "https://ponte-test.myshopify.com/548380009/checkouts/ac/bd5a8aa1ecd019dd3520ff791ee3a24c/recover?key=a1b2c3d4e5f6",
				MarketingConsent: annaConsent,
				CreatedAt:        utc("2025-06-16T07:48:12Z"), UpdatedAt: utc("2025-06-16T07:52:40Z"),
			},
		},
		"checkout without any phone is kept, with the reason": {
			fixture: "checkouts_update_nophone.json", topic: "checkouts/update", wantType: commerce.EventCheckoutUpdated,
			wantCorr: map[string]string{"checkout": "c0ffee00c0ffee00c0ffee00c0ffee00"},
			decode:   decodeAs[commerce.Checkout],
			want: commerce.Checkout{
				ID:       "c0ffee00c0ffee00c0ffee00c0ffee00",
				Contact:  commerce.Contact{PhoneProblem: commerce.PhoneMissing, Email: "guest@example.com", Country: "IT", Locale: "en"},
				Currency: "USD", Subtotal: "25.00", Total: "25.00",
				LineItems:   []commerce.LineItem{{Title: "Gift card", ProductID: "1", VariantID: "2", Quantity: 1, Price: "25.00"}},
				RecoveryURL: "https://ponte-test.myshopify.com/548380009/checkouts/ac/c0ffee00c0ffee00c0ffee00c0ffee00/recover?key=k",
				CreatedAt:   utc("2025-06-16T10:00:00Z"), UpdatedAt: utc("2025-06-16T10:05:00Z"),
			},
		},
		"checkout with only invalid phones keeps the raw value": {
			fixture: "checkouts_update_badphone.json", topic: "checkouts/update", wantType: commerce.EventCheckoutUpdated,
			wantCorr: map[string]string{"checkout": "badbadbadbad00000000000000000000"},
			decode:   decodeAs[commerce.Checkout],
			want: commerce.Checkout{
				ID:       "badbadbadbad00000000000000000000",
				Contact:  commerce.Contact{PhoneRaw: "not a phone", PhoneProblem: commerce.PhoneInvalid, FirstName: "Jo", LastName: "B", Country: "DE"},
				Currency: "EUR", Subtotal: "0.00", Total: "0.00", LineItems: []commerce.LineItem{},
				RecoveryURL: "https://ponte-test.myshopify.com/548380009/checkouts/ac/badbadbadbad00000000000000000000/recover?key=k",
				CreatedAt:   utc("2025-06-16T10:00:00Z"), UpdatedAt: utc("2025-06-16T10:06:00Z"), CompletedAt: utcPtr("2025-06-16T10:07:00Z"),
			},
		},
		"order created from a checkout": {
			fixture: "orders_create.json", topic: "orders/create", wantType: commerce.EventOrderCreated,
			wantCorr: map[string]string{"order": "820982911946154508", "checkout": "bd5a8aa1ecd019dd3520ff791ee3a24c", "customer": "706405506930370084", "phone": "+393331234567"},
			decode:   decodeAs[commerce.Order],
			want: commerce.Order{
				ID: "820982911946154508", Name: "#1001", CheckoutID: "bd5a8aa1ecd019dd3520ff791ee3a24c",
				Contact: commerce.Contact{Phone: "+393331234567", Email: "anna.rossi@example.com", FirstName: "Anna", LastName: "Rossi",
					CustomerID: "706405506930370084", Country: "IT", Locale: "it"},
				Currency: "EUR", Total: "39.80", LineItems: maglietta, FinancialStatus: commerce.FinancialPaid,
				StatusURL: "https://ponte-test.myshopify.com/548380009/orders/123456abcd/authenticate?key=abcdefg",
				CreatedAt: utc("2025-06-16T08:10:00Z"), UpdatedAt: utc("2025-06-16T08:10:02Z"),
			},
		},
		"order paid takes the trigger time as paid_at": {
			fixture: "orders_create.json", topic: "orders/paid", wantType: commerce.EventOrderPaid,
			wantCorr: map[string]string{"order": "820982911946154508", "checkout": "bd5a8aa1ecd019dd3520ff791ee3a24c", "customer": "706405506930370084", "phone": "+393331234567"},
			decode:   decodeAs[commerce.Order],
			want: commerce.Order{
				ID: "820982911946154508", Name: "#1001", CheckoutID: "bd5a8aa1ecd019dd3520ff791ee3a24c",
				Contact: commerce.Contact{Phone: "+393331234567", Email: "anna.rossi@example.com", FirstName: "Anna", LastName: "Rossi",
					CustomerID: "706405506930370084", Country: "IT", Locale: "it"},
				Currency: "EUR", Total: "39.80", LineItems: maglietta, FinancialStatus: commerce.FinancialPaid,
				StatusURL: "https://ponte-test.myshopify.com/548380009/orders/123456abcd/authenticate?key=abcdefg",
				CreatedAt: utc("2025-06-16T08:10:00Z"), UpdatedAt: utc("2025-06-16T08:10:02Z"), PaidAt: &triggeredAt,
			},
		},
		"order cancelled and refunded": {
			fixture: "orders_cancelled.json", topic: "orders/cancelled", wantType: commerce.EventOrderCancelled,
			wantCorr: map[string]string{"order": "820982911946154509", "customer": "115310627314723954", "phone": "+14155552671"},
			decode:   decodeAs[commerce.Order],
			want: commerce.Order{
				ID: "820982911946154509", Name: "#1002",
				Contact: commerce.Contact{Phone: "+14155552671", Email: "bob@example.com", FirstName: "Bob", LastName: "Norman",
					CustomerID: "115310627314723954", Country: "IT", Locale: "en"},
				Currency: "USD", Total: "120.00",
				LineItems:       []commerce.LineItem{{Title: "Boots", VariantTitle: "42", SKU: "B42", ProductID: "5", VariantID: "6", Quantity: 1, Price: "120.00"}},
				FinancialStatus: commerce.FinancialRefunded,
				StatusURL:       "https://ponte-test.myshopify.com/548380009/orders/9/authenticate?key=x",
				CreatedAt:       utc("2025-06-15T12:00:00Z"), UpdatedAt: utc("2025-06-16T12:00:00Z"),
				CancelledAt: utcPtr("2025-06-16T12:00:00Z"), CancelReason: "customer", RefundedAmount: "120.00",
			},
		},
		"refund": {
			fixture: "refunds_create.json", topic: "refunds/create", wantType: commerce.EventOrderRefunded,
			wantCorr: map[string]string{"order": "820982911946154508"},
			decode:   decodeAs[commerce.Order],
			want: commerce.Order{ID: "820982911946154508", Currency: "EUR", LineItems: []commerce.LineItem{}, RefundedAmount: "19.90",
				UpdatedAt: utc("2025-06-17T09:00:01Z")},
		},
		"fulfillment out for delivery, tracking from the lists": {
			fixture: "fulfillments_update.json", topic: "fulfillments/update", wantType: commerce.EventFulfillmentUpdated,
			wantCorr: map[string]string{"order": "820982911946154508", "phone": "+393331234567"},
			decode:   decodeAs[commerce.Fulfillment],
			want: commerce.Fulfillment{ID: "255858046", OrderID: "820982911946154508", Status: "success", ShipmentStatus: commerce.ShipmentOutForDelivery,
				TrackingCompany: "Poste Italiane", TrackingNumber: "RR123456785IT",
				TrackingURL: "https://www.poste.it/cerca/index.html#/risultati-spedizioni/RR123456785IT", UpdatedAt: utc("2025-06-18T07:30:00Z"),
				Contact: &commerce.Contact{Phone: "+393331234567", Email: "anna.rossi@example.com", FirstName: "Anna", LastName: "Rossi", Country: "IT"}},
		},
		"fulfillment delivered": {
			fixture: "fulfillments_create.json", topic: "fulfillments/create", wantType: commerce.EventFulfillmentCreated,
			wantCorr: map[string]string{"order": "820982911946154508"},
			decode:   decodeAs[commerce.Fulfillment],
			want: commerce.Fulfillment{ID: "255858047", OrderID: "820982911946154508", Status: "success", ShipmentStatus: commerce.ShipmentDelivered,
				TrackingCompany: "DHL Express", TrackingNumber: "1234567890", TrackingURL: "https://www.dhl.com/en/express/tracking.html?AWB=1234567890",
				UpdatedAt: utc("2025-06-16T10:00:00Z")},
		},
		"customer unsubscribed from SMS": {
			fixture: "customers_update.json", topic: "customers/update", wantType: commerce.EventCustomerUpdated,
			wantCorr: map[string]string{"customer": "706405506930370084", "phone": "+393331234567"},
			decode:   decodeAs[commerce.Customer],
			want: commerce.Customer{ID: "706405506930370084",
				Contact: commerce.Contact{Phone: "+393331234567", Email: "anna.rossi@example.com", FirstName: "Anna", LastName: "Rossi",
					CustomerID: "706405506930370084", Country: "IT"},
				MarketingConsent: &commerce.MarketingConsent{State: "unsubscribed", OptInLevel: "confirmed_opt_in", UpdatedAt: utcPtr("2025-06-18T13:00:00Z"), Source: "other"},
				Tags:             []string{"vip", "newsletter"},
				CreatedAt:        utc("2025-06-01T08:00:00Z"), UpdatedAt: utc("2025-06-18T13:00:00Z")},
		},
		"app uninstalled revokes the connection": {
			fixture: "app_uninstalled.json", topic: "app/uninstalled", wantType: sdk.EventConnectionRevoked,
			decode: decodeAs[map[string]any],
			want:   map[string]any{"reason": RevokedReason},
		},
	}
	h := testkit.Start(t, New)
	conn := testConn(t, "", nil)
	shopState(t, h.Host, conn.ID, "IT")
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			res, err := h.HandleWebhook(t.Context(), conn, signedDelivery(tc.topic, readFixture(t, tc.fixture), testClientSecret))
			if err != nil {
				t.Fatalf("HandleWebhook: %v", err)
			}
			if len(res.Events) != 1 {
				t.Fatalf("%d events, want 1", len(res.Events))
			}
			ev := res.Events[0]
			if ev.Type != tc.wantType || ev.DedupeKey != testWebhookID || !ev.OccurredAt.Equal(triggeredAt) {
				t.Errorf("event %s / %s / %v, want %s / %s / %v", ev.Type, ev.DedupeKey, ev.OccurredAt, tc.wantType, testWebhookID, triggeredAt)
			}
			if diff := cmp.Diff(tc.wantCorr, ev.Correlation); diff != "" {
				t.Errorf("correlation (-want +got):\n%s", diff)
			}
			got, err := tc.decode(ev.Payload)
			if err != nil {
				t.Fatalf("decoding payload: %v", err)
			}
			if m, ok := got.(map[string]any); ok {
				delete(m, "shopify")
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("payload (-want +got):\n%s", diff)
			}
			var env struct {
				Shopify Delivery `json:"shopify"`
			}
			if err := json.Unmarshal(ev.Payload, &env); err != nil {
				t.Fatal(err)
			}
			wantEnv := Delivery{Topic: tc.topic, WebhookID: testWebhookID, EventID: "98880550-7158-44d4-b7cd-2c97c8a091b5",
				TriggeredAt: triggeredAt, APIVersion: "2025-07", ShopDomain: testDomain}
			if diff := cmp.Diff(wantEnv, env.Shopify); diff != "" {
				t.Errorf("delivery envelope (-want +got):\n%s", diff)
			}
		})
	}
}

func decodeAs[T any](b json.RawMessage) (any, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}

// TestWebhookSignatureFailures: every way a delivery can fail to prove it
// is Shopify's is Auth, and nothing is parsed.
func TestWebhookSignatureFailures(t *testing.T) {
	t.Parallel()
	body := readFixture(t, "checkouts_create.json")
	good := signedDelivery("checkouts/create", body, testClientSecret)
	with := func(mut func(r *sdk.WebhookRequest)) sdk.WebhookRequest {
		r := good
		r.Headers = map[string][]string{}
		for k, v := range good.Headers {
			r.Headers[k] = v
		}
		r.Body = append([]byte(nil), body...)
		mut(&r)
		return r
	}
	tests := map[string]struct {
		req  sdk.WebhookRequest
		conn map[string]any
	}{
		"missing header":     {req: with(func(r *sdk.WebhookRequest) { delete(r.Headers, "X-Shopify-Hmac-Sha256") })},
		"empty header":       {req: with(func(r *sdk.WebhookRequest) { r.Headers["X-Shopify-Hmac-Sha256"] = []string{""} })},
		"not base64":         {req: with(func(r *sdk.WebhookRequest) { r.Headers["X-Shopify-Hmac-Sha256"] = []string{"%%%not-base64%%%"} })},
		"hex instead of b64": {req: with(func(r *sdk.WebhookRequest) { r.Headers["X-Shopify-Hmac-Sha256"] = []string{"deadbeef"} })},
		"wrong secret":       {req: signedDelivery("checkouts/create", body, "another-apps-secret")},
		"body changed":       {req: with(func(r *sdk.WebhookRequest) { r.Body[10] ^= 1 })},
		"body extended":      {req: with(func(r *sdk.WebhookRequest) { r.Body = append(r.Body, ' ') })},
		"truncated mac": {req: with(func(r *sdk.WebhookRequest) {
			mac := sdk.SignHMACSHA256([]byte(testClientSecret), body)
			r.Headers["X-Shopify-Hmac-Sha256"] = []string{base64.StdEncoding.EncodeToString(mac[:16])}
		})},
		"connection without secret": {req: good, conn: map[string]any{"client_secret": ""}},
	}
	h := testkit.Start(t, New)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			res, err := h.HandleWebhook(t.Context(), testConn(t, "", tc.conn), tc.req)
			testkit.RequireKind(t, err, sdk.KindAuth)
			if len(res.Events) != 0 {
				t.Errorf("events despite a bad signature: %v", res.Events)
			}
		})
	}
	// And the untouched delivery passes, so the cases above fail for
	// their own reason.
	if _, err := h.HandleWebhook(t.Context(), testConn(t, "", nil), good); err != nil {
		t.Fatalf("good delivery: %v", err)
	}
}

func TestWebhookRefusals(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, New)
	conn := testConn(t, "", nil)
	tests := map[string]struct {
		topic  string
		body   []byte
		domain string
		kind   sdk.ErrorKind
		events int
	}{
		"unknown topic is a zero result": {topic: "products/create", body: []byte(`{"id":1}`), events: 0},
		"body not JSON":                  {topic: "orders/create", body: []byte(`{"id":`), kind: sdk.KindInvalid},
		"order without id":               {topic: "orders/create", body: []byte(`{"name":"#1"}`), kind: sdk.KindInvalid},
		"another shop's delivery":        {topic: "orders/create", body: readFixture(t, "orders_create.json"), domain: "other.myshopify.com", kind: sdk.KindInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			req := signedDelivery(tc.topic, tc.body, testClientSecret)
			if tc.domain != "" {
				req.Headers["X-Shopify-Shop-Domain"] = []string{tc.domain}
			}
			res, err := h.HandleWebhook(t.Context(), conn, req)
			if tc.kind != 0 {
				testkit.RequireKind(t, err, tc.kind)
				return
			}
			if err != nil || len(res.Events) != tc.events || res.Response != nil {
				t.Fatalf("got %d events, %v", len(res.Events), err)
			}
		})
	}
}

// TestWebhookFallbacks: without Shopify's delivery headers the event still
// gets a stable key and a time from the payload.
func TestWebhookFallbacks(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, New)
	conn := testConn(t, "", nil)
	req := signedDelivery("orders/updated", readFixture(t, "orders_create.json"), testClientSecret)
	delete(req.Headers, "X-Shopify-Webhook-Id")
	delete(req.Headers, "X-Shopify-Triggered-At")
	var keys []string
	for range 2 {
		res, err := h.HandleWebhook(t.Context(), conn, req)
		if err != nil || len(res.Events) != 1 {
			t.Fatalf("%v %v", res, err)
		}
		if got := res.Events[0].OccurredAt; !got.Equal(utc("2025-06-16T08:10:02Z")) {
			t.Errorf("occurred at %v, want the order's updated_at", got)
		}
		keys = append(keys, res.Events[0].DedupeKey)
	}
	if keys[0] == "" || keys[0] != keys[1] {
		t.Errorf("dedupe keys %q, want equal and non-empty", keys)
	}
}

// TestCheckoutDeleteFindsToken: checkouts/delete carries the numeric id
// only; the event still names the checkout by the token its earlier
// webhooks used, so the cart's workflow gets it.
func TestCheckoutDeleteFindsToken(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, New)
	conn := testConn(t, "", nil)
	del := signedDelivery("checkouts/delete", readFixture(t, "checkouts_delete.json"), testClientSecret)
	res, err := h.HandleWebhook(t.Context(), conn, del)
	if err != nil || len(res.Events) != 1 || res.Events[0].Correlation["checkout"] != "981820079255243537" {
		t.Fatalf("delete of an unseen checkout: %+v %v", res, err)
	}
	if _, err := h.HandleWebhook(t.Context(), conn, signedDelivery("checkouts/create", readFixture(t, "checkouts_create.json"), testClientSecret)); err != nil {
		t.Fatal(err)
	}
	res, err = h.HandleWebhook(t.Context(), conn, del)
	if err != nil || len(res.Events) != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	if ev := res.Events[0]; ev.Type != commerce.EventCheckoutDeleted || ev.Correlation["checkout"] != "bd5a8aa1ecd019dd3520ff791ee3a24c" {
		t.Errorf("delete event %s %v, want checkout.deleted for the token", ev.Type, ev.Correlation)
	}
}

func TestPhoneNormalization(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		pc                  phoneContext
		cands               []phoneCandidate
		phone, raw, problem string
	}{
		"international":              {cands: []phoneCandidate{{raw: "+39 333 123 4567"}}, phone: "+393331234567"},
		"00 prefix with a country":   {pc: phoneContext{shopCountry: "IT"}, cands: []phoneCandidate{{raw: "0039 333 1234567"}}, phone: "+393331234567"},
		"national with shop country": {pc: phoneContext{shopCountry: "IT"}, cands: []phoneCandidate{{raw: "333-123-4567"}}, phone: "+393331234567"},
		"default_country beats shop": {pc: phoneContext{shopCountry: "IT", defaultCountry: "DE"}, cands: []phoneCandidate{{raw: "01512 3456789"}}, phone: "+4915123456789"},
		"address country beats both": {pc: phoneContext{shopCountry: "IT", defaultCountry: "IT"}, cands: []phoneCandidate{{raw: "(415) 555-2671", country: "US"}}, phone: "+14155552671"},
		"national without country":   {cands: []phoneCandidate{{raw: "3331234567"}}, raw: "3331234567", problem: commerce.PhoneInvalid},
		"first valid wins":           {pc: phoneContext{shopCountry: "IT"}, cands: []phoneCandidate{{raw: "123"}, {raw: ""}, {raw: "+14155552671"}}, phone: "+14155552671"},
		"none":                       {cands: []phoneCandidate{{raw: " "}, {}}, problem: commerce.PhoneMissing},
		"no candidates":              {problem: commerce.PhoneMissing},
		"letters":                    {pc: phoneContext{shopCountry: "IT"}, cands: []phoneCandidate{{raw: "call me"}}, raw: "call me", problem: commerce.PhoneInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			phone, raw, problem := tc.pc.normalize(tc.cands...)
			if diff := cmp.Diff([]string{tc.phone, tc.raw, tc.problem}, []string{phone, raw, problem}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSumMoney(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in   []string
		want string
	}{
		"none":          {nil, ""},
		"cents":         {[]string{"19.90", "0.10"}, "20.00"},
		"whole":         {[]string{"5", "2.5"}, "7.50"},
		"three decimal": {[]string{"1.125", "1"}, "2.125"},
		"negative":      {[]string{"-1.00", "0.50"}, "-0.50"},
		"small":         {[]string{"0.05"}, "0.05"},
		"garbage":       {[]string{"abc"}, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := sumMoney(tc.in...); got != tc.want {
				t.Errorf("sumMoney(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
