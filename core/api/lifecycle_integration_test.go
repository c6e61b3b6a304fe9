package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ponte-hub/ponte/core/api"
)

// A connector with sdk.Lifecycle is set up at its provider when a
// connection is created, enabled again or reconfigured, and torn down when
// it is disabled or deleted; a setup the provider refuses is answered with
// the provider's reason and leaves nothing changed.
func TestIntegrationConnectionLifecycle(t *testing.T) {
	// Not parallel with itself: shopsim records calls globally.
	f := newFixture(t)
	shopsim.take()
	hook := func(id string) string { return publicURL + "/hooks/" + id }

	r := f.do(t, "POST", "/v1/connections", "a-write", `{"connector":"shopsim","name":"Shop","config":{"shop":"a","token":"good"}}`)
	c := decode[api.ConnectionBody](t, r, http.StatusCreated)
	if diff := cmp.Diff([]string{"connect " + c.ID + " " + hook(c.ID) + " good"}, shopsim.take()); diff != "" {
		t.Errorf("calls after create (-want +got):\n%s", diff)
	}

	// Refused credentials: 422 with the provider's reason; not kept.
	p := problem(t, f.do(t, "POST", "/v1/connections", "a-write", `{"connector":"shopsim","name":"Bad","config":{"shop":"b","token":"bad"}}`), http.StatusUnprocessableEntity)
	if !strings.Contains(p.Detail, "invalid API access token") {
		t.Errorf("refused create: detail %q", p.Detail)
	}
	shopsim.take()
	r = f.do(t, "GET", "/v1/connections?connector=shopsim", "a-read", "")
	list := decode[struct{ Data []api.ConnectionBody }](t, r, http.StatusOK)
	for _, got := range list.Data {
		if got.Name == "Bad" {
			t.Errorf("a refused create was kept: %+v", got)
		}
	}

	// Throttled: 503 with the provider's Retry-After.
	r = f.do(t, "POST", "/v1/connections", "a-write", `{"connector":"shopsim","name":"Busy","config":{"shop":"c","token":"busy"}}`)
	problem(t, r, http.StatusServiceUnavailable)
	if r.Header.Get("Retry-After") != "7" {
		t.Errorf("Retry-After = %q, want 7", r.Header.Get("Retry-After"))
	}
	shopsim.take()

	// Disable -> disconnect; a rename of a disabled one calls nothing;
	// enable -> connect.
	decode[api.ConnectionBody](t, f.do(t, "PATCH", "/v1/connections/"+c.ID, "a-write", `{"status":"disabled"}`), http.StatusOK)
	decode[api.ConnectionBody](t, f.do(t, "PATCH", "/v1/connections/"+c.ID, "a-write", `{"name":"Shop 2"}`), http.StatusOK)
	decode[api.ConnectionBody](t, f.do(t, "PATCH", "/v1/connections/"+c.ID, "a-write", `{"status":"active"}`), http.StatusOK)
	want := []string{"disconnect " + c.ID, "connect " + c.ID + " " + hook(c.ID) + " good"}
	if diff := cmp.Diff(want, shopsim.take()); diff != "" {
		t.Errorf("calls after disable, rename, enable (-want +got):\n%s", diff)
	}

	// A new token the provider refuses: 422, and the stored token is still
	// the old one.
	problem(t, f.do(t, "PATCH", "/v1/connections/"+c.ID, "a-write", `{"config":{"token":"bad","shop":"a2"}}`), http.StatusUnprocessableEntity)
	shopsim.take()
	got, cfg, err := f.st.ResolvedConnection(context.Background(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), `"token":"good"`) || !strings.Contains(string(cfg), `"shop":"a"`) || got.Status != "active" {
		t.Errorf("after a refused reconfiguration: status %s config %s", got.Status, cfg)
	}

	// Delete -> disconnect first.
	if r := f.do(t, "DELETE", "/v1/connections/"+c.ID, "a-write", ""); r.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Code, r.Body)
	}
	if diff := cmp.Diff([]string{"disconnect " + c.ID}, shopsim.take()); diff != "" {
		t.Errorf("calls after delete (-want +got):\n%s", diff)
	}
}
