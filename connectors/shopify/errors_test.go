package shopify

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

func TestMapHTTPError(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		status     int
		header     http.Header
		body       string
		kind       sdk.ErrorKind
		retryAfter time.Duration
		message    string
	}{
		"401":                  {status: 401, body: `{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}`, kind: sdk.KindAuth, message: "op: the Admin API answered 401: [API] Invalid API key or access token (unrecognized login or wrong password) (the access token is wrong or the app was uninstalled)"},
		"403":                  {status: 403, kind: sdk.KindAuth},
		"404":                  {status: 404, body: `{"errors":"Not Found"}`, kind: sdk.KindNotFound, message: "op: the Admin API answered 404: Not Found"},
		"402":                  {status: 402, kind: sdk.KindPermanent},
		"423":                  {status: 423, kind: sdk.KindPermanent},
		"429 fractional":       {status: 429, header: http.Header{"Retry-After": {"2.5"}}, kind: sdk.KindRateLimited, retryAfter: 2500 * time.Millisecond},
		"429 without a header": {status: 429, kind: sdk.KindRateLimited, retryAfter: DefaultRetryAfter},
		"429 bad header":       {status: 429, header: http.Header{"Retry-After": {"soon"}}, kind: sdk.KindRateLimited, retryAfter: DefaultRetryAfter},
		"500":                  {status: 500, kind: sdk.KindRetryable},
		"502 html page":        {status: 502, body: "<html>bad gateway</html>", kind: sdk.KindRetryable, message: "op: the Admin API answered 502"},
		"400":                  {status: 400, body: `{"errors":{"query":"Required parameter missing or invalid"}}`, kind: sdk.KindInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := tc.header
			if h == nil {
				h = http.Header{}
			}
			e := mapHTTPError("op", tc.status, h, []byte(tc.body))
			if e.Kind != tc.kind || e.RetryAfter != tc.retryAfter {
				t.Errorf("kind %s retry %v, want %s %v", e.Kind, e.RetryAfter, tc.kind, tc.retryAfter)
			}
			if tc.message != "" && e.Message != tc.message {
				t.Errorf("message %q, want %q", e.Message, tc.message)
			}
		})
	}
}

func TestMapGraphQLErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		body       string
		kind       sdk.ErrorKind
		code       string
		retryAfter time.Duration
	}{
		"none":                   {body: `{"data":{"shop":{}}}`},
		"empty list":             {body: `{"errors":[]}`},
		"throttled":              {body: `{"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED"}}],"extensions":{"cost":{"requestedQueryCost":107,"actualQueryCost":null,"throttleStatus":{"maximumAvailable":1000,"currentlyAvailable":7,"restoreRate":50}}}}`, kind: sdk.KindRateLimited, code: "THROTTLED", retryAfter: 2 * time.Second},
		"throttled barely":       {body: `{"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED"}}],"extensions":{"cost":{"requestedQueryCost":10,"throttleStatus":{"maximumAvailable":1000,"currentlyAvailable":9.9,"restoreRate":50}}}}`, kind: sdk.KindRateLimited, code: "THROTTLED", retryAfter: 100 * time.Millisecond},
		"throttled without cost": {body: `{"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED"}}]}`, kind: sdk.KindRateLimited, code: "THROTTLED", retryAfter: DefaultRetryAfter},
		"access denied":          {body: `{"errors":[{"message":"Access denied for abandonedCheckouts field.","extensions":{"code":"ACCESS_DENIED"}}]}`, kind: sdk.KindAuth, code: "ACCESS_DENIED"},
		"shop inactive":          {body: `{"errors":[{"message":"Shop is inactive","extensions":{"code":"SHOP_INACTIVE"}}]}`, kind: sdk.KindPermanent, code: "SHOP_INACTIVE"},
		"internal":               {body: `{"errors":[{"message":"Internal error. Looks like something went wrong on our end.","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}`, kind: sdk.KindRetryable, code: "INTERNAL_SERVER_ERROR"},
		"max cost":               {body: `{"errors":[{"message":"Query cost is 2000","extensions":{"code":"MAX_COST_EXCEEDED"}}]}`, kind: sdk.KindPermanent, code: "MAX_COST_EXCEEDED"},
		"bad field":              {body: `{"errors":[{"message":"Field 'x' doesn't exist on type 'QueryRoot'","extensions":{"code":"undefinedField"}}]}`, kind: sdk.KindPermanent, code: "undefinedField"},
		"string errors":          {body: `{"errors":"something"}`, kind: sdk.KindPermanent},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var gr graphQLResponse
			if err := json.Unmarshal([]byte(tc.body), &gr); err != nil {
				t.Fatal(err)
			}
			err := mapGraphQLErrors("op", gr)
			if tc.kind == 0 {
				if err != nil {
					t.Fatalf("unexpected %v", err)
				}
				return
			}
			e, ok := errorsAsSDK(err)
			if !ok {
				t.Fatalf("not an *sdk.Error: %v", err)
			}
			if diff := cmp.Diff([]any{tc.kind, tc.code, tc.retryAfter}, []any{e.Kind, e.Code, e.RetryAfter}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestUserErrors(t *testing.T) {
	t.Parallel()
	err := userErrorsError("creating", []userError{{Field: []string{"basicCodeDiscount", "code"}, Message: "Code must be unique.", Code: "TAKEN"}, {Message: "Other"}})
	e, ok := errorsAsSDK(err)
	if !ok || e.Kind != sdk.KindInvalid || e.Code != "TAKEN" || e.Message != "creating: Shopify refused it: basicCodeDiscount.code: Code must be unique.; Other" {
		t.Errorf("%+v", e)
	}
	if userErrorsError("x", nil) != nil {
		t.Error("no user errors gave an error")
	}
}

func TestDiscountCode(t *testing.T) {
	t.Parallel()
	a, _ := discountCode("conn_1", "key", "save 10%-")
	b, _ := discountCode("conn_1", "key", "save 10%-")
	c, _ := discountCode("conn_2", "key", "save 10%-")
	r1, _ := discountCode("conn_1", "", "")
	r2, _ := discountCode("conn_1", "", "")
	if a != b || a == c || a[:7] != "SAVE10-" || len(a) != 17 {
		t.Errorf("derived codes %q %q %q", a, b, c)
	}
	if r1 == r2 || len(r1) != 10 {
		t.Errorf("random codes %q %q", r1, r2)
	}
	if _, err := discountCode("c", "k", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"); sdk.KindOf(err) != sdk.KindInvalid {
		t.Errorf("long prefix: %v", err)
	}
}
