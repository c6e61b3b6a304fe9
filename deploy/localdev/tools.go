package localdev

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Pinned versions of the servers built from their Go modules.
const (
	// TemporalCLIModule is the Temporal CLI's module (which embeds the dev
	// server); TemporalCLIPackage its main package.
	TemporalCLIModule  = "github.com/temporalio/cli"
	TemporalCLIPackage = TemporalCLIModule + "/cmd/temporal"
	// TemporalCLIVersion is the pinned Temporal CLI version.
	TemporalCLIVersion = "v1.5.1"
	// StripeMockPackage is Stripe's API mock (module and main package).
	StripeMockPackage = "github.com/stripe/stripe-mock"
	// StripeMockVersion is the pinned stripe-mock version.
	StripeMockVersion = "v0.180.0"
)

// Progress receives the messages of long operations (building a tool,
// installing Postgres). It defaults to os.Stderr; tests may redirect it.
var Progress io.Writer = os.Stderr

// TemporalBinary returns binDir/temporal, building the pinned Temporal CLI
// into binDir first when it is missing or another version (about 4 minutes
// on 2 cores).
func TemporalBinary(ctx context.Context, binDir string) (string, error) {
	return goTool(ctx, binDir, tool{
		name:      "temporal",
		module:    TemporalCLIModule,
		pkg:       TemporalCLIPackage,
		version:   TemporalCLIVersion,
		buildHint: "about 4 minutes on 2 cores",
	})
}

// StripeMockBinary returns binDir/stripe-mock, building the pinned
// stripe-mock into binDir first when it is missing or another version.
func StripeMockBinary(ctx context.Context, binDir string) (string, error) {
	return goTool(ctx, binDir, tool{
		name:      "stripe-mock",
		module:    StripeMockPackage,
		pkg:       StripeMockPackage,
		version:   StripeMockVersion,
		buildHint: "under a minute",
	})
}

type tool struct {
	name      string
	module    string
	pkg       string
	version   string // "v1.2.3"
	buildHint string
}

func goTool(ctx context.Context, binDir string, t tool) (string, error) {
	binDir, err := filepath.Abs(binDir)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", binDir, err)
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", binDir, err)
	}
	path := filepath.Join(binDir, t.name)
	if hasVersion(path, t) {
		return path, nil
	}
	// Test binaries of several packages run at once and may all want the
	// tool; one builds it, the others wait and then find it.
	unlock, err := lockFile(ctx, filepath.Join(binDir, "."+t.name+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if hasVersion(path, t) {
		return path, nil
	}
	if err := goInstall(ctx, binDir, t); err != nil {
		return "", err
	}
	if !hasVersion(path, t) {
		return "", fmt.Errorf("built %s, but its build information does not say %s %s", path, t.module, t.version)
	}
	return path, nil
}

// hasVersion reports whether path exists and was built from the pinned
// module version (read from the Go build information embedded in the binary;
// these tools print a placeholder when asked for their version), so a binary
// left from an older pin is rebuilt instead of silently used.
func hasVersion(path string, t tool) bool {
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return false
	}
	return info.Main.Path == t.module && info.Main.Version == t.version
}

func goInstall(ctx context.Context, binDir string, t tool) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("building %s: the go command is not on PATH: %w", t.name, err)
	}
	target := t.pkg + "@" + t.version
	fmt.Fprintf(Progress, "building %s %s into %s (%s, once)...\n", t.name, t.version, binDir, t.buildHint)
	cmd := exec.CommandContext(ctx, goBin, "install", target)
	// Outside any module, so the go.mod of the directory we run in (and its
	// replace directives) plays no part; GOFLAGS from the caller would.
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOBIN="+binDir, "GOFLAGS=", "GOWORK=off")
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &out
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("building %s: %w", t.name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("building %s with `go install %s`: %w\n%s", t.name, target, err, out.String())
			}
			fmt.Fprintf(Progress, "built %s in %s\n", filepath.Join(binDir, t.name), time.Since(started).Round(time.Second))
			return nil
		case <-tick.C:
			fmt.Fprintf(Progress, "  still building %s (%s so far)...\n", t.name, time.Since(started).Round(time.Second))
		}
	}
}

// lockFile takes an exclusive flock on path, waiting for it while ctx lasts.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening lock file %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if err != syscall.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
