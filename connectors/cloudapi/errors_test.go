package cloudapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

func TestMapGraphError(t *testing.T) {
	t.Parallel()
	type want struct {
		Kind       sdk.ErrorKind
		Code       string
		RetryAfter time.Duration
	}
	tests := map[string]struct {
		status int
		code   int
		typ    string
		hint   time.Duration
		want   want
	}{
		"130429 throughput":              {400, 130429, "OAuthException", 0, want{sdk.KindRateLimited, "130429", time.Second}},
		"130429 with a hint":             {400, 130429, "OAuthException", 3 * time.Second, want{sdk.KindRateLimited, "130429", 3 * time.Second}},
		"80007 WABA rate limit":          {400, 80007, "OAuthException", 0, want{sdk.KindRateLimited, "80007", time.Minute}},
		"80007 with usage header":        {400, 80007, "OAuthException", 7 * time.Minute, want{sdk.KindRateLimited, "80007", 7 * time.Minute}},
		"4 app rate limit":               {400, 4, "OAuthException", 0, want{sdk.KindRateLimited, "4", time.Minute}},
		"613 rate limit":                 {400, 613, "OAuthException", 0, want{sdk.KindRateLimited, "613", time.Minute}},
		"131056 pair rate":               {400, 131056, "OAuthException", 0, want{sdk.KindRateLimited, "131056", 6 * time.Second}},
		"131056 never under 6 s":         {400, 131056, "OAuthException", time.Second, want{sdk.KindRateLimited, "131056", 6 * time.Second}},
		"131047 outside the window":      {400, 131047, "OAuthException", 0, want{sdk.KindPermanent, "131047", 0}},
		"131026 undeliverable":           {400, 131026, "OAuthException", 0, want{sdk.KindPermanent, "131026", 0}},
		"131050 marketing stopped":       {400, 131050, "OAuthException", 0, want{sdk.KindPermanent, "131050", 0}},
		"131049 not delivered by Meta":   {400, 131049, "OAuthException", 0, want{sdk.KindPermanent, "131049", 0}},
		"131048 spam rate limit":         {400, 131048, "OAuthException", 0, want{sdk.KindPermanent, "131048", 0}},
		"131031 account locked":          {400, 131031, "OAuthException", 0, want{sdk.KindPermanent, "131031", 0}},
		"368 policy block":               {403, 368, "OAuthException", 0, want{sdk.KindPermanent, "368", 0}},
		"132015 template paused":         {400, 132015, "OAuthException", 0, want{sdk.KindPermanent, "132015", 0}},
		"190 token expired":              {401, 190, "OAuthException", 0, want{sdk.KindAuth, "190", 0}},
		"0 auth exception":               {401, 0, "OAuthException", 0, want{sdk.KindAuth, "0", 0}},
		"10 permission denied":           {403, 10, "OAuthException", 0, want{sdk.KindAuth, "10", 0}},
		"200 permission":                 {403, 200, "OAuthException", 0, want{sdk.KindAuth, "200", 0}},
		"100 invalid parameter":          {400, 100, "OAuthException", 0, want{sdk.KindInvalid, "100", 0}},
		"131008 missing parameter":       {400, 131008, "OAuthException", 0, want{sdk.KindInvalid, "131008", 0}},
		"131009 bad value":               {400, 131009, "OAuthException", 0, want{sdk.KindInvalid, "131009", 0}},
		"132000 param count":             {400, 132000, "OAuthException", 0, want{sdk.KindInvalid, "132000", 0}},
		"132001 template does not exist": {404, 132001, "OAuthException", 0, want{sdk.KindNotFound, "132001", 0}},
		"131000 something went wrong":    {500, 131000, "OAuthException", 0, want{sdk.KindRetryable, "131000", 0}},
		"131016 service unavailable":     {503, 131016, "OAuthException", 0, want{sdk.KindRetryable, "131016", 0}},
		"2 temporary":                    {503, 2, "OAuthException", 0, want{sdk.KindRetryable, "2", 0}},
		"unknown code on a 500":          {500, 999999, "OAuthException", 0, want{sdk.KindRetryable, "999999", 0}},
		"unknown code on a 400":          {400, 999999, "OAuthException", 0, want{sdk.KindPermanent, "999999", 0}},
		"unknown code on a 429":          {429, 999999, "OAuthException", 0, want{sdk.KindRateLimited, "999999", time.Minute}},
		"502 page without graph json":    {502, 0, "", 0, want{sdk.KindRetryable, "", 0}},
		"401 page without graph json":    {401, 0, "", 0, want{sdk.KindAuth, "", 0}},
		"404 page without graph json":    {404, 0, "", 0, want{sdk.KindNotFound, "", 0}},
		"400 page without graph json":    {400, 0, "", 0, want{sdk.KindPermanent, "", 0}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ge := GraphError{HTTPStatus: tc.status, Code: tc.code, Type: tc.typ, RetryAfter: tc.hint, FBTraceID: "AbC"}
			if tc.typ != "" {
				ge.Message = "(#x) title"
			}
			e := MapGraphError("sending text", ge)
			if diff := cmp.Diff(tc.want, want{e.Kind, e.Code, e.RetryAfter}); diff != "" {
				t.Errorf("mapped (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(e.Message, "sending text: graph api ") {
				t.Errorf("message %q", e.Message)
			}
		})
	}
}

func TestRetryHint(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		header http.Header
		want   time.Duration
	}{
		"none":        {http.Header{}, 0},
		"retry-after": {http.Header{"Retry-After": {"5"}}, 5 * time.Second},
		"business use case usage": {http.Header{"X-Business-Use-Case-Usage": {
			`{"102290129340398":[{"type":"whatsapp_business_management","call_count":100,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":12}]}`}}, 12 * time.Minute},
		"garbage": {http.Header{"Retry-After": {"soon"}, "X-Business-Use-Case-Usage": {"{"}}, 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := retryHint(tc.header); got != tc.want {
				t.Errorf("retryHint = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestTransportFailures: what the Graph API answers when it is not itself,
// through the real plugin boundary.
func TestTransportFailures(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, New)
	answer := func(status int, header http.Header, body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for k, v := range header {
				w.Header()[k] = v
			}
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	tests := map[string]struct {
		base string
		kind sdk.ErrorKind
		code string
		ra   time.Duration
	}{
		"502 from a proxy":   {base: answer(502, nil, "<html>Bad Gateway</html>"), kind: sdk.KindRetryable},
		"connection refused": {base: closed.URL, kind: sdk.KindRetryable},
		"throttled with usage header": {base: answer(400, http.Header{"X-Business-Use-Case-Usage": {`{"1":[{"estimated_time_to_regain_access":3}]}`}},
			`{"error":{"message":"(#80007) Rate limit issues","type":"OAuthException","code":80007,"fbtrace_id":"x"}}`), kind: sdk.KindRateLimited, code: "80007", ra: 3 * time.Minute},
		"200 without a message id": {base: answer(200, nil, `{"messaging_product":"whatsapp","messages":[]}`), kind: sdk.KindPermanent},
		"200 that is not json":     {base: answer(200, nil, `ok`), kind: sdk.KindPermanent},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			params, _ := json.Marshal(map[string]any{"to": "+393331234567", "body": "x", "ledger_id": "msg_1"})
			_, err := h.Invoke(t.Context(), sdk.ActionCall{Connection: connWith(t, testConfig(tc.base)), Action: ActionSendText, Params: params})
			e := testkit.RequireKind(t, err, tc.kind)
			if e.Code != tc.code || e.RetryAfter != tc.ra {
				t.Errorf("code %q retry after %v, want %q %v (%v)", e.Code, e.RetryAfter, tc.code, tc.ra, e)
			}
		})
	}
}

func TestConfigChecks(t *testing.T) {
	t.Parallel()
	h := testkit.Start(t, New)
	params, _ := json.Marshal(map[string]any{"to": "+393331234567", "body": "x", "ledger_id": "msg_1"})
	tests := map[string]struct {
		change func(map[string]any)
		kind   sdk.ErrorKind
	}{
		"no access token": {func(c map[string]any) { delete(c, "access_token") }, sdk.KindAuth},
		"bad version":     {func(c map[string]any) { c["graph_api_version"] = "21" }, sdk.KindInvalid},
		"bad tier":        {func(c map[string]any) { c["throughput_tier"] = 500 }, sdk.KindInvalid},
		"bad api_base":    {func(c map[string]any) { c["api_base"] = "graph.facebook.com" }, sdk.KindInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig("http://127.0.0.1:1")
			tc.change(cfg)
			_, err := h.Invoke(t.Context(), sdk.ActionCall{Connection: connWith(t, cfg), Action: ActionSendText, Params: params})
			testkit.RequireKind(t, err, tc.kind)
		})
	}
}

func TestPhoneNormalization(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in     string
		digits string
		ok     bool
	}{
		"e164":           {"+393331234567", "393331234567", true},
		"wa_id":          {"393331234567", "393331234567", true},
		"formatted":      {"+1 (650) 555-1234", "16505551234", true},
		"dots":           {"+39.333.123.4567", "393331234567", true},
		"national 0":     {"0333 1234567", "", false},
		"letters":        {"+39333abc4567", "", false},
		"too short":      {"+123456", "", false},
		"too long":       {"+1234567890123456", "", false},
		"empty":          {"", "", false},
		"plus in middle": {"39+3331234567", "", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d, ok := RecipientDigits(tc.in)
			if d != tc.digits || ok != tc.ok {
				t.Errorf("RecipientDigits(%q) = %q, %v; want %q, %v", tc.in, d, ok, tc.digits, tc.ok)
			}
		})
	}
	for in, want := range map[string]string{"16505551234": "+16505551234", "": "", "+1650": "+1650", "120363025@g.us": "120363025@g.us"} {
		if got := E164(in); got != want {
			t.Errorf("E164(%q) = %q, want %q", in, got, want)
		}
	}
}
