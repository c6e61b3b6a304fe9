package localdev

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// StripeMockOptions configures StartStripeMock.
type StripeMockOptions struct {
	// Binary is stripe-mock (see StripeMockBinary).
	Binary string
	// LogPath receives its output.
	LogPath string
}

// StripeMock is a running stripe-mock.
type StripeMock struct {
	httpPort, httpsPort int
	proc                *Process
}

// StartStripeMock starts stripe-mock with its HTTP and HTTPS listeners on free
// ports of 127.0.0.1 (given both, it opens no others) and waits until it
// answers API requests.
func StartStripeMock(ctx context.Context, opts StripeMockOptions) (*StripeMock, error) {
	if opts.Binary == "" || opts.LogPath == "" {
		return nil, errors.New("starting stripe-mock: binary and log path are required")
	}
	httpPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	httpsPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	proc, err := StartProcess(ProcessSpec{
		Name:    "stripe-mock",
		Path:    opts.Binary,
		Args:    []string{"-http-addr", hostPort(httpPort), "-https-addr", hostPort(httpsPort)},
		LogPath: opts.LogPath,
	})
	if err != nil {
		return nil, err
	}
	s := &StripeMock{httpPort: httpPort, httpsPort: httpsPort, proc: proc}
	if err := s.waitReady(ctx, time.Minute); err != nil {
		_ = proc.Stop(5 * time.Second)
		return nil, err
	}
	return s, nil
}

// URL is the plain-HTTP base URL, e.g. http://127.0.0.1:41234.
func (s *StripeMock) URL() string { return "http://" + hostPort(s.httpPort) }

// HTTPSURL is the base URL of the HTTPS listener (self-signed certificate).
func (s *StripeMock) HTTPSURL() string { return "https://" + hostPort(s.httpsPort) }

// Done is closed when the process exits.
func (s *StripeMock) Done() <-chan struct{} { return s.proc.Done() }

// Stop stops stripe-mock.
func (s *StripeMock) Stop() error {
	if err := s.proc.Stop(5 * time.Second); err != nil {
		return fmt.Errorf("stopping stripe-mock: %w", err)
	}
	return nil
}

func (s *StripeMock) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	var lastErr error
	for {
		lastErr = s.probe(ctx, hc)
		if lastErr == nil {
			return nil
		}
		select {
		case <-s.proc.Done():
			return s.proc.exitedError("starting stripe-mock")
		case <-ctx.Done():
			return fmt.Errorf("waiting for stripe-mock at %s: %w (last error: %v)", s.URL(), ctx.Err(), lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// probe lists customers, which stripe-mock answers from its fixtures once
// its OpenAPI spec is loaded.
func (s *StripeMock) probe(ctx context.Context, hc *http.Client) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/v1/customers", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer sk_test_123")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New("GET /v1/customers answered " + strconv.Itoa(resp.StatusCode))
	}
	return nil
}
