package localdev

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
)

// Loopback is the only address the local servers listen on.
const Loopback = "127.0.0.1"

var (
	handedOutMu sync.Mutex
	// handedOut remembers the ports FreePort returned in this process, so two
	// servers started one after the other never get the same port even if
	// neither has bound it yet.
	handedOut = map[int]bool{}
)

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on and that
// this process has not handed out before.
//
// The port is found by binding port 0. Before returning, FreePort connects to
// the port and closes the accepted side first, which leaves the port in
// TIME_WAIT: while it is there (60 s on Linux) the kernel does not hand it out
// again for other port-0 binds, yet a server that sets SO_REUSEADDR (Go,
// Postgres and Temporal all do) can still bind it explicitly. That narrows the
// window in which another process could take the port before our server
// starts.
func FreePort() (int, error) {
	for range 50 {
		port, err := reservePort()
		if err != nil {
			return 0, err
		}
		handedOutMu.Lock()
		taken := handedOut[port]
		if !taken {
			handedOut[port] = true
		}
		handedOutMu.Unlock()
		if !taken {
			return port, nil
		}
	}
	return 0, errors.New("finding a free port: the kernel kept returning ports already handed out")
}

func reservePort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(Loopback, "0"))
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		return 0, fmt.Errorf("finding a free port: connecting to %d: %w", port, err)
	}
	if server := <-accepted; server != nil {
		// The side that closes first ends up in TIME_WAIT; it must be the
		// listening side, whose local address is the port we hand out.
		server.Close()
	}
	client.Close()
	return port, nil
}

// PortFree reports whether nothing listens on 127.0.0.1:port, by binding it
// for a moment.
func PortFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(Loopback, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// pickPort returns preferred when it is set and free, else a free port.
func pickPort(preferred int) (int, error) {
	if preferred > 0 && PortFree(preferred) {
		handedOutMu.Lock()
		handedOut[preferred] = true
		handedOutMu.Unlock()
		return preferred, nil
	}
	return FreePort()
}

func hostPort(port int) string { return net.JoinHostPort(Loopback, strconv.Itoa(port)) }
