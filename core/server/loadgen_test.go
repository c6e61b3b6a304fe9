package server_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// loadGen is the open-loop load generator of the webhook benchmarks: requests
// are scheduled at a fixed rate whatever the server's answers, and each
// latency is measured from the request's scheduled time, so a stalled server
// cannot hide its stall by slowing the generator down (coordinated omission).
//
// It speaks HTTP/1.1 itself over persistent connections, one per worker:
// each request is written in one call from bytes built in a reused buffer,
// and the answer's status line and headers are parsed just enough to skip
// its body. Go's net/http client spent 100-110 µs of CPU a request here
// (a third of what ponte serve spends), on the same two cores as the server
// it measures; a provider's senders are not on the server's machine, so the
// less the generator takes, the more faithful the figure.
type loadGen struct {
	host, path string
	rate       int
	conns      int
	// build appends request k's extra header lines ("Name: value\r\n") to
	// headers and returns them with its body.
	build func(k int, headers []byte) ([]byte, []byte)
}

// loadResult is one request's answer: its latency from its scheduled time
// and its HTTP status, or -1 when no answer came.
type loadResult struct {
	latency time.Duration
	status  int
	err     error
}

// newLoadGen prepares a generator for rawURL (http only).
func newLoadGen(rawURL string, rate, conns int, build func(k int, headers []byte) ([]byte, []byte)) (*loadGen, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("loadGen speaks plain HTTP only, not %s", u.Scheme)
	}
	return &loadGen{host: u.Host, path: u.RequestURI(), rate: rate, conns: conns, build: build}, nil
}

// run sends requests 0..total-1, request k due k/rate after the start, and
// returns every answer and how many requests left later than 10 ms after
// their due time (the generator itself falling behind).
func (g *loadGen) run(total int) (results []loadResult, late int64) {
	results = make([]loadResult, total)
	var next, lateCount atomic.Int64
	interval := time.Second / time.Duration(g.rate)
	start := time.Now()
	var wg sync.WaitGroup
	for range g.conns {
		wg.Go(func() {
			c := &rawConn{host: g.host}
			defer c.close()
			var req []byte
			for {
				k := int(next.Add(1) - 1)
				if k >= total {
					return
				}
				due := start.Add(time.Duration(k) * interval)
				if wait := time.Until(due); wait > 0 {
					time.Sleep(wait)
				} else if -wait > 10*time.Millisecond {
					lateCount.Add(1)
				}
				req = g.request(req[:0], k)
				status, err := c.do(req)
				if err != nil {
					status = -1
				}
				results[k] = loadResult{latency: time.Since(due), status: status, err: err}
			}
		})
	}
	wg.Wait()
	return results, lateCount.Load()
}

func (g *loadGen) request(buf []byte, k int) []byte {
	buf = append(buf, "POST "...)
	buf = append(buf, g.path...)
	buf = append(buf, " HTTP/1.1\r\nHost: "...)
	buf = append(buf, g.host...)
	buf = append(buf, "\r\n"...)
	headers, body := g.build(k, buf)
	buf = append(headers, "Content-Length: "...)
	buf = strconv.AppendInt(buf, int64(len(body)), 10)
	buf = append(buf, "\r\n\r\n"...)
	return append(buf, body...)
}

// rawConn is one persistent HTTP/1.1 connection.
type rawConn struct {
	host string
	conn net.Conn
	r    *bufio.Reader
	used bool // a request was answered on it: the server may since have closed it
}

func (c *rawConn) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.r, c.used = nil, nil, false
	}
}

// do sends one request and reads its answer. A request on a reused
// connection that the server had closed in the meantime (EOF before any
// byte of the answer) is sent once more on a new one, as browsers and
// providers do.
func (c *rawConn) do(req []byte) (int, error) {
	for attempt := 0; ; attempt++ {
		if c.conn == nil {
			conn, err := net.DialTimeout("tcp", c.host, 5*time.Second)
			if err != nil {
				return 0, err
			}
			c.conn, c.r = conn, bufio.NewReaderSize(conn, 4096)
		}
		reused := c.used
		_ = c.conn.SetDeadline(time.Now().Add(30 * time.Second))
		status, keep, err := c.roundTrip(req)
		if err == nil {
			c.used = true
			if !keep {
				c.close()
			}
			return status, nil
		}
		c.close()
		if !(reused && attempt == 0 && errors.Is(err, errNoAnswer)) {
			return 0, err
		}
	}
}

var errNoAnswer = errors.New("connection closed before an answer")

func (c *rawConn) roundTrip(req []byte) (status int, keepAlive bool, err error) {
	if _, err := c.conn.Write(req); err != nil {
		return 0, false, errNoAnswer
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		if len(line) == 0 && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)) {
			return 0, false, errNoAnswer
		}
		return 0, false, fmt.Errorf("reading the status line: %w", err)
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, false, fmt.Errorf("malformed status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("malformed status line %q", line)
	}
	length, chunked, keepAlive := -1, false, true
	for {
		h, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, false, fmt.Errorf("reading headers: %w", err)
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("malformed header %q", h)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, false, fmt.Errorf("malformed Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			keepAlive = !bytes.EqualFold(value, []byte("close"))
		}
	}
	switch {
	case chunked:
		for {
			sizeLine, err := c.r.ReadSlice('\n')
			if err != nil {
				return 0, false, fmt.Errorf("reading a chunk size: %w", err)
			}
			sizeHex, _, _ := bytes.Cut(bytes.TrimRight(sizeLine, "\r\n"), []byte(";"))
			size, err := strconv.ParseInt(string(sizeHex), 16, 64)
			if err != nil {
				return 0, false, fmt.Errorf("malformed chunk size %q", sizeLine)
			}
			if size == 0 {
				for { // trailers, then the empty line
					t, err := c.r.ReadSlice('\n')
					if err != nil {
						return 0, false, fmt.Errorf("reading trailers: %w", err)
					}
					if len(bytes.TrimRight(t, "\r\n")) == 0 {
						break
					}
				}
				break
			}
			if _, err := c.r.Discard(int(size) + 2); err != nil {
				return 0, false, fmt.Errorf("reading a chunk: %w", err)
			}
		}
	case length >= 0:
		if _, err := c.r.Discard(length); err != nil {
			return 0, false, fmt.Errorf("reading the body: %w", err)
		}
	default:
		// No length and not chunked: the body ends with the connection.
		if _, err := io.Copy(io.Discard, c.r); err != nil {
			return 0, false, fmt.Errorf("reading the body: %w", err)
		}
		keepAlive = false
	}
	return status, keepAlive, nil
}

// TestLoadGen checks the generator's HTTP/1.1 against net/http's server:
// bodies with a length, chunked ones, a server closing the connection after
// an answer, and one closing idle connections between requests.
func TestLoadGen(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("X-Seq") == "" || len(body) == 0 {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		served.Add(1)
		switch n, _ := strconv.Atoi(r.Header.Get("X-Seq")); n % 4 {
		case 0:
			w.WriteHeader(http.StatusOK) // empty body, Content-Length: 0
		case 1:
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusAccepted)
		case 2:
			f := w.(http.Flusher)
			_, _ = w.Write([]byte("part one,"))
			f.Flush() // forces chunked encoding
			_, _ = w.Write([]byte(" part two"))
		case 3:
			http.Error(w, "conflict", http.StatusConflict)
		}
	}))
	// Idle connections are dropped after 40 ms, so requests 100 ms apart
	// on one connection each meet a connection the server has closed.
	srv.Config.IdleTimeout = 40 * time.Millisecond
	srv.Start()
	defer srv.Close()
	build := func(k int, headers []byte) ([]byte, []byte) {
		headers = append(headers, "X-Seq: "...)
		headers = strconv.AppendInt(headers, int64(k*4), 10) // always the 200 case
		return append(headers, "\r\n"...), []byte(`{"k":1}`)
	}
	gen, err := newLoadGen(srv.URL+"/hooks/x?y=1", 2000, 4, func(k int, headers []byte) ([]byte, []byte) {
		headers = append(headers, "X-Seq: "...)
		headers = strconv.AppendInt(headers, int64(k), 10)
		return append(headers, "\r\n"...), []byte(`{"k":1}`)
	})
	if err != nil {
		t.Fatal(err)
	}
	results, _ := gen.run(200)
	want := map[int]int{0: http.StatusOK, 1: http.StatusAccepted, 2: http.StatusOK, 3: http.StatusConflict}
	for k, r := range results {
		if r.status != want[k%4] {
			t.Fatalf("request %d: status %d (%v), want %d", k, r.status, r.err, want[k%4])
		}
	}
	if served.Load() != 200 {
		t.Errorf("server saw %d requests, want 200", served.Load())
	}

	// A request that meets a connection the server closed while idle is
	// sent again on a new one.
	slow, err := newLoadGen(srv.URL+"/hooks/x", 10, 1, build)
	if err != nil {
		t.Fatal(err)
	}
	before := served.Load()
	results, _ = slow.run(5)
	for k, r := range results {
		if r.status != http.StatusOK {
			t.Errorf("after an idle close, request %d: status %d (%v)", k, r.status, r.err)
		}
	}
	if got := served.Load() - before; got != 5 {
		t.Errorf("server saw %d of the 5 slow requests", got)
	}
}
