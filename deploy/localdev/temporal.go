package localdev

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
)

// TemporalOptions configures StartTemporal.
type TemporalOptions struct {
	// Binary is the Temporal CLI (see TemporalBinary).
	Binary string
	// DBFile is the SQLite file that keeps the server's state across
	// restarts; empty keeps it in memory (lost when the server stops).
	DBFile string
	// Port is the frontend gRPC port; 0 picks a free one, a busy one is an
	// error.
	Port int
	// UI turns the Web UI on, at UIPort (0 picks a free one).
	UI     bool
	UIPort int
	// LogPath receives the server's output.
	LogPath string
	// Namespaces to create besides "default".
	Namespaces []string
}

// Temporal is a running Temporal dev server.
type Temporal struct {
	port, uiPort int
	proc         *Process
}

// StartTemporal starts `temporal server start-dev` on 127.0.0.1 and waits
// until its frontend answers health checks and knows the default namespace.
//
// Every port the dev server opens is bound to 127.0.0.1: the frontend (gRPC
// and HTTP), the Web UI (which follows --ip unless --ui-ip is given), the
// metrics endpoint, and the history, matching and worker services, which the
// dev server binds to free ports on the frontend IP. The HTTP and metrics
// ports are chosen here rather than left to the server so that they come from
// the same pool as every other port we hand out.
func StartTemporal(ctx context.Context, opts TemporalOptions) (*Temporal, error) {
	if opts.Binary == "" {
		return nil, errors.New("starting temporal: no binary given")
	}
	if opts.LogPath == "" {
		return nil, errors.New("starting temporal: no log path given")
	}
	port, err := explicitOrFreePort("temporal frontend", opts.Port)
	if err != nil {
		return nil, err
	}
	httpPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	metricsPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	args := []string{
		"server", "start-dev",
		"--ip", Loopback,
		"--port", strconv.Itoa(port),
		"--http-port", strconv.Itoa(httpPort),
		"--metrics-port", strconv.Itoa(metricsPort),
		"--log-format", "json",
		"--log-level", "warn",
	}
	uiPort := 0
	if opts.UI {
		if uiPort, err = explicitOrFreePort("temporal web UI", opts.UIPort); err != nil {
			return nil, err
		}
		args = append(args, "--ui-ip", Loopback, "--ui-port", strconv.Itoa(uiPort))
	} else {
		args = append(args, "--headless")
	}
	if opts.DBFile != "" {
		dbFile, err := filepath.Abs(opts.DBFile)
		if err != nil {
			return nil, fmt.Errorf("resolving %s: %w", opts.DBFile, err)
		}
		// WAL with synchronous=NORMAL: SQLite's default rollback journal
		// with a sync per commit makes the file-backed dev server twice
		// as slow (25 against 55 new workflows/s on the 2-core reference
		// machine, trivial workflow, 8 pollers). WAL keeps the file
		// consistent across a crash of the server and loses at most the
		// last commits on a power cut, which is fine for a development
		// server.
		args = append(args, "--db-filename", dbFile,
			"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal")
	}
	for _, ns := range opts.Namespaces {
		args = append(args, "--namespace", ns)
	}
	proc, err := StartProcess(ProcessSpec{
		Name:              "temporal",
		Path:              opts.Binary,
		Args:              args,
		LogPath:           opts.LogPath,
		StopSignal:        syscall.SIGTERM,
		ParentDeathSignal: syscall.SIGTERM,
	})
	if err != nil {
		return nil, err
	}
	t := &Temporal{port: port, uiPort: uiPort, proc: proc}
	if err := t.waitReady(ctx, 2*time.Minute); err != nil {
		_ = proc.Stop(10 * time.Second)
		return nil, err
	}
	return t, nil
}

func explicitOrFreePort(what string, port int) (int, error) {
	if port == 0 {
		return FreePort()
	}
	if !PortFree(port) {
		return 0, fmt.Errorf("starting %s: port %d on %s is in use", what, port, Loopback)
	}
	return port, nil
}

// Address is the frontend's host:port.
func (t *Temporal) Address() string { return hostPort(t.port) }

// UIURL is the Web UI's URL, or "" when the UI is off.
func (t *Temporal) UIURL() string {
	if t.uiPort == 0 {
		return ""
	}
	return "http://" + hostPort(t.uiPort)
}

// LogPath is the server's log file.
func (t *Temporal) LogPath() string { return t.proc.LogPath() }

// Done is closed when the server process exits.
func (t *Temporal) Done() <-chan struct{} { return t.proc.Done() }

// Stop shuts the server down, killing it after 15 seconds.
func (t *Temporal) Stop() error {
	if err := t.proc.Stop(15 * time.Second); err != nil {
		return fmt.Errorf("stopping temporal: %w", err)
	}
	return nil
}

func (t *Temporal) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var lastErr error
	for {
		lastErr = CheckTemporal(ctx, t.Address(), "default")
		if lastErr == nil {
			return nil
		}
		select {
		case <-t.proc.Done():
			return t.proc.exitedError("starting temporal")
		case <-ctx.Done():
			return fmt.Errorf("waiting for temporal at %s: %w (last error: %v); see %s", t.Address(), ctx.Err(), lastErr, t.proc.LogPath())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// CheckTemporal dials the Temporal frontend at address, checks its health
// and that namespace exists.
func CheckTemporal(ctx context.Context, address, namespace string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	opts := client.Options{
		HostPort:  address,
		Namespace: namespace,
		// The SDK logs to stdout by default; a readiness probe has nothing
		// worth saying there.
		Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return fmt.Errorf("dialing temporal at %s: %w", address, err)
	}
	defer c.Close()
	if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("checking temporal's health: %w", err)
	}
	if _, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace}); err != nil {
		return fmt.Errorf("describing temporal namespace %q: %w", namespace, err)
	}
	return nil
}
