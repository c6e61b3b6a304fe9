package stripeconnector

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"

	"github.com/ponte-hub/ponte/deploy/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// recordedRequest is one request the connector sent to Stripe.
type recordedRequest struct {
	Method         string
	Path           string
	IdempotencyKey string
	Authorization  string
	Form           url.Values
}

// recorder is a reverse proxy in front of stripe-mock that records what the
// connector sends. stripe-mock validates requests against Stripe's OpenAPI
// spec but keeps no state, so the recording is how tests see idempotency keys
// and parameters.
type recorder struct {
	URL string

	mu       sync.Mutex
	requests []recordedRequest
	// inject, when set, is appended to the next request's form body, to make
	// stripe-mock reject it as Stripe would an invalid request.
	inject string
}

func newRecorder(t *testing.T, target string) *recorder {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.requests = append(r.requests, recordedRequest{
			Method:         req.Method,
			Path:           req.URL.Path,
			IdempotencyKey: req.Header.Get("Idempotency-Key"),
			Authorization:  req.Header.Get("Authorization"),
			Form:           form,
		})
		if r.inject != "" {
			if len(body) > 0 {
				body = append(body, '&')
			}
			body = append(body, r.inject...)
			r.inject = ""
		}
		r.mu.Unlock()
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

func (r *recorder) take() []recordedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.requests
	r.requests = nil
	return out
}

func (r *recorder) injectNext(param string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inject = param
}
