package pluginhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ponte-hub/ponte/plugins/proto/hostrpc"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// BinaryPrefix starts the file name of every connector plugin binary: the
// plugin of connector "stripe" is ponte-connector-stripe.
const BinaryPrefix = "ponte-connector-"

// ErrIncompatibleProtocol is returned (wrapped) for a plugin built for a
// connector protocol major version this host does not speak. Such a plugin is
// not restarted: it must be rebuilt with a matching plugins/sdk.
var ErrIncompatibleProtocol = errors.New("incompatible connector protocol version")

// Options configure a [Host].
type Options struct {
	// Dir is the plugin directory. Every executable file in it whose name
	// starts with [BinaryPrefix] is started; the rest of the name is the
	// connector's name (dashes may stand for underscores) and must match the
	// manifest's.
	Dir string
	// Services are the host services plugins call back into. Nil refuses
	// every call with a Permanent error (fine for hosts that only need
	// manifests).
	Services Services
	// Logger receives the host's and the plugins' logs. Default: slog.Default().
	Logger *slog.Logger
	// HealthInterval is how often a running plugin is pinged. Default 5s.
	HealthInterval time.Duration
	// StartTimeout bounds starting a plugin: process start, handshake, Init
	// and reading the manifest. Default 15s.
	StartTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before restarting a crashed
	// plugin; the wait doubles after each failed start and goes back to
	// MinBackoff once a plugin has run for longer than MaxBackoff.
	// Defaults 100ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// PluginEnv adds environment variables ("KEY=value") to the plugins of
	// the named connectors, and to no other: a plugin otherwise gets only a
	// minimal environment. The linked-device connector gets its device
	// store's database URL this way.
	PluginEnv map[string][]string
	// OnStart, when set, is called (on its own goroutine) with the
	// connector's name each time its plugin has started and is running,
	// the first time and after every restart, so that whoever holds
	// sessions in it can open them again.
	OnStart func(connector string)
	// Strict makes New fail when any plugin fails to start. Otherwise such a
	// plugin is reported by Status, and retried unless it was refused for
	// good (wrong protocol version, name mismatch).
	Strict bool
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.HealthInterval <= 0 {
		o.HealthInterval = 5 * time.Second
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 15 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(30*time.Second, o.MinBackoff)
	}
}

// Host runs and supervises the connector plugins found in a directory. It
// implements [Registry].
type Host struct {
	opts Options
	log  *slog.Logger

	ctx    context.Context // ends at Close; supervisors run under it
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.RWMutex
	plugins []*managed // in path order
	byName  map[string]*managed
}

var _ Registry = (*Host)(nil)

// New discovers the plugins in opts.Dir, starts them all (in parallel), reads
// their manifests and supervises them until [Host.Close]. ctx bounds the
// start only. A plugin that fails to start makes New fail when opts.Strict is
// set; otherwise it shows in Status with its error.
func New(ctx context.Context, opts Options) (*Host, error) {
	opts.setDefaults()
	paths, err := discover(opts.Dir)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithCancel(context.Background())
	h := &Host{
		opts:   opts,
		log:    opts.Logger.With("component", "pluginhost"),
		ctx:    hctx,
		cancel: cancel,
		byName: map[string]*managed{},
	}
	for _, p := range paths {
		h.plugins = append(h.plugins, h.newManaged(p))
	}

	errs := make([]error, len(h.plugins))
	var wg sync.WaitGroup
	for i, m := range h.plugins {
		wg.Go(func() { errs[i] = m.start(ctx, false) })
	}
	wg.Wait()

	if opts.Strict {
		if err := errors.Join(errs...); err != nil {
			h.Close()
			return nil, fmt.Errorf("starting connector plugins: %w", err)
		}
	}
	for i, m := range h.plugins {
		if errs[i] != nil {
			m.log.Error("connector plugin did not start", "error", errs[i])
			if errors.Is(errs[i], errRefused) {
				continue // retrying cannot help
			}
		}
		h.wg.Go(func() { m.supervise(errs[i] != nil) })
	}
	h.log.Info("connector plugins started", "dir", opts.Dir, "found", len(h.plugins), "running", h.running())
	return h, nil
}

func (h *Host) running() int {
	n := 0
	for _, m := range h.plugins {
		m.mu.RLock()
		if m.running {
			n++
		}
		m.mu.RUnlock()
	}
	return n
}

// discover lists the plugin binaries in dir, sorted.
func discover(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading plugin directory: %w", err)
	}
	var paths []string
	for _, e := range entries {
		name := e.Name()
		// Names with a dot are editor backups, checksums, half-copied
		// files and the like, never a plugin.
		if !strings.HasPrefix(name, BinaryPrefix) || len(name) == len(BinaryPrefix) || strings.Contains(name, ".") {
			continue
		}
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p) // follows symlinks
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			continue
		}
		paths = append(paths, p)
	}
	slices.Sort(paths)
	return paths, nil
}

// Connector returns the client for the named connector.
func (h *Host) Connector(name string) (Client, error) {
	h.mu.RLock()
	m, ok := h.byName[name]
	h.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownConnector, name)
	}
	if _, err := m.current(); err != nil {
		return nil, err
	}
	return m.client, nil
}

// Manifests lists the manifests of the connectors that have started at least
// once, sorted by name. A plugin being restarted keeps its last manifest.
func (h *Host) Manifests() []sdk.Manifest {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]sdk.Manifest, 0, len(h.byName))
	for _, m := range h.byName {
		m.mu.RLock()
		out = append(out, m.manifest)
		m.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b sdk.Manifest) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Status reports every discovered plugin, sorted by name (plugins that never
// started are named after their binary).
func (h *Host) Status() []PluginStatus {
	out := make([]PluginStatus, 0, len(h.plugins))
	for _, m := range h.plugins {
		m.mu.RLock()
		s := PluginStatus{
			Name:     m.manifest.Name,
			Version:  m.manifest.Version,
			Path:     m.path,
			Running:  m.running,
			Restarts: m.restarts,
			Error:    m.lastErr,
		}
		if m.running {
			s.PID = m.pid
		}
		if s.Name == "" {
			s.Name = m.wantName
		}
		m.mu.RUnlock()
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b PluginStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Close stops supervising and kills every plugin. Calls made afterwards return
// ErrUnavailable.
func (h *Host) Close() {
	h.cancel()
	h.wg.Wait()
	var wg sync.WaitGroup
	for _, m := range h.plugins {
		wg.Go(m.stop)
	}
	wg.Wait()
}

// errRefused marks start failures that a restart cannot fix.
var errRefused = errors.New("plugin refused")

// managed is one plugin binary and the process currently running it.
type managed struct {
	h        *Host
	path     string
	wantName string // from the binary's name
	log      *slog.Logger
	client   *connectorClient // stable across restarts
	nudge    chan struct{}    // asks the supervisor to check the plugin now

	mu        sync.RWMutex
	proc      *plugin.Client
	rpc       *hostrpc.Client
	grpc      *plugin.GRPCClient
	manifest  sdk.Manifest
	params    *hostrpc.ParamValidator
	running   bool
	restarts  int
	pid       int
	lastErr   string
	startedAt time.Time
}

func (h *Host) newManaged(path string) *managed {
	want := strings.TrimPrefix(filepath.Base(path), BinaryPrefix)
	m := &managed{
		h:        h,
		path:     path,
		wantName: want,
		log:      h.log.With("plugin", filepath.Base(path)),
		nudge:    make(chan struct{}, 1),
	}
	m.client = &connectorClient{m: m}
	return m
}

// pluginEnv is the environment a plugin gets. The host's own environment is
// not passed on: it holds the database URL and the master key, which
// third-party plugin code has no business seeing.
func (m *managed) pluginEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "TZ", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR",
		"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "GOCOVERDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	level := "info"
	if m.h.opts.Logger.Enabled(context.Background(), slog.LevelDebug) {
		level = "debug"
	}
	env = append(env, m.h.opts.PluginEnv[strings.ReplaceAll(m.wantName, "-", "_")]...)
	return append(env, hostrpc.LogLevelEnv+"="+level)
}

// start starts the plugin process, initialises the connector and reads its
// manifest. On success the plugin is running; on failure nothing is left
// running. restart counts it as a restart in the same critical section that
// marks it running, so a status never shows the new process without its count.
func (m *managed) start(ctx context.Context, restart bool) (err error) {
	ctx, cancel := context.WithTimeout(ctx, m.h.opts.StartTimeout)
	defer cancel()

	cmd := exec.Command(m.path)
	cmd.Env = m.pluginEnv()
	proc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  hostrpc.Handshake(),
		VersionedPlugins: hostrpc.VersionedPlugins(),
		Cmd:              cmd,
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     m.h.opts.StartTimeout,
		GRPCDialOptions:  hostrpc.DialOptions(),
		Logger:           newSlogAdapter(m.h.opts.Logger, hclog.Info),
	})
	defer func() {
		if err != nil {
			proc.Kill()
			m.mu.Lock()
			m.lastErr = err.Error()
			m.mu.Unlock()
		}
	}()

	cp, err := proc.Client()
	if err != nil {
		if strings.Contains(err.Error(), "incompatible API version") {
			return fmt.Errorf("starting %s: %w %v; this host speaks v%d (rebuild the connector with a matching plugins/sdk): %w",
				m.path, ErrIncompatibleProtocol, negotiatedVersionHint(err), sdk.ProtocolVersion, errRefused)
		}
		return fmt.Errorf("starting %s: %w", m.path, err)
	}
	if v := proc.NegotiatedVersion(); v != sdk.ProtocolVersion {
		return fmt.Errorf("starting %s: %w: negotiated v%d, this host speaks v%d: %w", m.path, ErrIncompatibleProtocol, v, sdk.ProtocolVersion, errRefused)
	}
	raw, err := cp.Dispense(hostrpc.PluginName)
	if err != nil {
		return fmt.Errorf("starting %s: dispensing the connector: %w", m.path, err)
	}
	rpc := raw.(*hostrpc.Client)
	gc, _ := cp.(*plugin.GRPCClient)

	services := &servicesForPlugin{s: m.h.opts.Services, connector: m.connectorName(), log: m.log}
	if err := rpc.Init(ctx, services); err != nil {
		return fmt.Errorf("starting %s: initialising the connector: %w", m.path, err)
	}
	man, version, err := rpc.Manifest(ctx)
	if err != nil {
		return fmt.Errorf("starting %s: %w", m.path, err)
	}
	if version != sdk.ProtocolVersion {
		return fmt.Errorf("starting %s: %w: the manifest says v%d, this host speaks v%d: %w", m.path, ErrIncompatibleProtocol, version, sdk.ProtocolVersion, errRefused)
	}
	if man.Name != m.wantName && man.Name != strings.ReplaceAll(m.wantName, "-", "_") {
		return fmt.Errorf("starting %s: the connector calls itself %q; its binary must be named %s%s: %w", m.path, man.Name, BinaryPrefix, man.Name, errRefused)
	}
	params, err := hostrpc.NewParamValidator(man)
	if err != nil {
		return fmt.Errorf("starting %s: invalid manifest: %w: %w", m.path, err, errRefused)
	}

	m.h.mu.Lock()
	if other, dup := m.h.byName[man.Name]; dup && other != m {
		m.h.mu.Unlock()
		return fmt.Errorf("starting %s: connector %q is already provided by %s: %w", m.path, man.Name, other.path, errRefused)
	}
	m.h.byName[man.Name] = m
	m.h.mu.Unlock()

	pid := 0
	if rc := proc.ReattachConfig(); rc != nil {
		pid = rc.Pid
	}
	m.mu.Lock()
	m.proc, m.rpc, m.grpc = proc, rpc, gc
	m.manifest, m.params = man, params
	m.running, m.pid, m.lastErr, m.startedAt = true, pid, "", time.Now()
	if restart {
		m.restarts++
	}
	m.mu.Unlock()
	m.log.Info("connector plugin running", "connector", man.Name, "version", man.Version, "pid", pid)
	if f := m.h.opts.OnStart; f != nil {
		go f(man.Name)
	}
	return nil
}

// negotiatedVersionHint pulls go-plugin's "Plugin version: N" out of its
// error, which has no typed form, for a message that names both versions.
func negotiatedVersionHint(err error) string {
	s := err.Error()
	i := strings.Index(s, "Plugin version: ")
	if i < 0 {
		return ""
	}
	s = s[i+len("Plugin version: "):]
	if j := strings.IndexAny(s, ", "); j >= 0 {
		s = s[:j]
	}
	return "(the plugin speaks v" + s + ")"
}

// connectorName is the name the plugin's host services act for: the
// manifest's once known, else the binary's (the two must match).
func (m *managed) connectorName() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.manifest.Name != "" {
		return m.manifest.Name
	}
	return strings.ReplaceAll(m.wantName, "-", "_")
}

// current returns the running plugin's client, or ErrUnavailable.
func (m *managed) current() (*hostrpc.Client, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if !m.running {
		return nil, fmt.Errorf("%w: connector %s is restarting", ErrUnavailable, m.wantName)
	}
	return m.rpc, nil
}

// markDown records that the plugin stopped running and kills what is left of
// it.
func (m *managed) markDown(reason string) {
	m.mu.Lock()
	proc := m.proc
	m.running, m.proc, m.rpc, m.grpc, m.lastErr = false, nil, nil, nil, reason
	m.mu.Unlock()
	if proc != nil {
		proc.Kill()
	}
}

func (m *managed) stop() { m.markDown("host closed") }

// checkSoon asks the supervisor to check the plugin now, after a call failed
// in transport.
func (m *managed) checkSoon() {
	select {
	case m.nudge <- struct{}{}:
	default:
	}
}

// exitPoll is how often the supervisor looks whether the plugin process has
// exited; go-plugin offers no notification, and the check is a mutex and a
// bool.
const exitPoll = 50 * time.Millisecond

// supervise watches the plugin while it runs and restarts it with backoff
// when it exits or fails its health checks, until the host closes.
func (m *managed) supervise(startFailed bool) {
	ctx := m.h.ctx
	backoff := m.h.opts.MinBackoff
	for {
		if !startFailed {
			reason := m.watch(ctx)
			if ctx.Err() != nil {
				return
			}
			m.mu.RLock()
			up := time.Since(m.startedAt)
			m.mu.RUnlock()
			m.log.Warn("connector plugin down; restarting", "reason", reason, "uptime", up.Round(time.Millisecond).String())
			m.markDown(reason)
			if up > m.h.opts.MaxBackoff {
				backoff = m.h.opts.MinBackoff
			}
		}
		startFailed = false
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			err := m.start(ctx, true)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, errRefused) {
				m.log.Error("connector plugin refused; not restarting it", "error", err)
				return
			}
			backoff = min(backoff*2, m.h.opts.MaxBackoff)
			m.log.Error("restarting connector plugin failed", "error", err, "next_attempt_in", backoff.String())
		}
	}
}

// watch returns why the running plugin should be restarted, or "" when ctx
// ends.
func (m *managed) watch(ctx context.Context) string {
	tick := time.NewTicker(exitPoll)
	defer tick.Stop()
	lastPing := time.Now()
	for {
		checkNow := false
		select {
		case <-ctx.Done():
			return ""
		case <-m.nudge:
			checkNow = true
		case <-tick.C:
		}
		m.mu.RLock()
		proc, gc := m.proc, m.grpc
		m.mu.RUnlock()
		if proc == nil || proc.Exited() {
			return "plugin process exited"
		}
		if checkNow || time.Since(lastPing) >= m.h.opts.HealthInterval {
			lastPing = time.Now()
			if err := ping(ctx, gc, m.h.opts.HealthInterval); err != nil {
				if proc.Exited() {
					return "plugin process exited"
				}
				if ctx.Err() != nil {
					return ""
				}
				return "health check failed: " + err.Error()
			}
		}
	}
}

// ping runs go-plugin's gRPC health check with a deadline (the client's own
// Ping has none and would hang on a stopped process).
func ping(ctx context.Context, gc *plugin.GRPCClient, timeout time.Duration) error {
	if gc == nil {
		return errors.New("no gRPC connection")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := grpc_health_v1.NewHealthClient(gc.Conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: plugin.GRPCServiceName})
	return err
}

// connectorClient is the Client of one connector. It stays valid across
// restarts of the plugin: each call uses whichever process runs now.
type connectorClient struct {
	m *managed
}

var _ Client = (*connectorClient)(nil)

func (c *connectorClient) Manifest() sdk.Manifest {
	c.m.mu.RLock()
	defer c.m.mu.RUnlock()
	return c.m.manifest
}

// result maps the outcome of a call: connector errors pass through as
// *sdk.Error, transport failures become ErrUnavailable (unless the caller's
// own context ended) and make the supervisor look at the plugin at once.
func (c *connectorClient) result(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	var se *sdk.Error
	if errors.As(err, &se) {
		return se
	}
	var te *hostrpc.TransportError
	if errors.As(err, &te) {
		c.m.checkSoon()
		if ctx.Err() != nil {
			return fmt.Errorf("connector %s: %s: %w", c.m.wantName, op, ctx.Err())
		}
		return fmt.Errorf("%w: connector %s: %s: %w", ErrUnavailable, c.m.wantName, op, err)
	}
	return fmt.Errorf("connector %s: %s: %w", c.m.wantName, op, err)
}

func (c *connectorClient) HandleWebhook(ctx context.Context, conn sdk.Connection, req sdk.WebhookRequest) (sdk.WebhookResult, error) {
	rpc, err := c.m.current()
	if err != nil {
		return sdk.WebhookResult{}, err
	}
	res, err := rpc.HandleWebhook(ctx, conn, req)
	return res, c.result(ctx, "handling a webhook", err)
}

func (c *connectorClient) Handshake(ctx context.Context, conn sdk.Connection, req sdk.WebhookRequest) (sdk.HTTPResponse, error) {
	rpc, err := c.m.current()
	if err != nil {
		return sdk.HTTPResponse{}, err
	}
	res, err := rpc.Handshake(ctx, conn, req)
	return res, c.result(ctx, "answering a handshake", err)
}

// ValidateParams implements Client with the schemas compiled when the plugin
// last started; it needs no running plugin.
func (c *connectorClient) ValidateParams(action string, params json.RawMessage) error {
	c.m.mu.RLock()
	v := c.m.params
	c.m.mu.RUnlock()
	if v == nil {
		return fmt.Errorf("%w: connector %s has not started", ErrUnavailable, c.m.wantName)
	}
	return v.Validate(action, params)
}

// Invoke validates the parameters against the action's schema (an Invalid
// *sdk.Error when they do not match) and runs the action.
func (c *connectorClient) Invoke(ctx context.Context, call sdk.ActionCall) (json.RawMessage, error) {
	c.m.mu.RLock()
	rpc, params, running := c.m.rpc, c.m.params, c.m.running
	c.m.mu.RUnlock()
	if !running {
		return nil, fmt.Errorf("%w: connector %s is restarting", ErrUnavailable, c.m.wantName)
	}
	if err := params.Validate(call.Action, call.Params); err != nil {
		return nil, err
	}
	res, err := rpc.Invoke(ctx, call)
	return res, c.result(ctx, "invoking "+call.Action, err)
}

func (c *connectorClient) Poll(ctx context.Context, conn sdk.Connection, cursor string) (sdk.PollResult, error) {
	rpc, err := c.m.current()
	if err != nil {
		return sdk.PollResult{}, err
	}
	res, err := rpc.Poll(ctx, conn, cursor)
	return res, c.result(ctx, "polling", err)
}

func (c *connectorClient) Connect(ctx context.Context, conn sdk.Connection) error {
	rpc, err := c.m.current()
	if err != nil {
		return err
	}
	return c.result(ctx, "connecting", rpc.Connect(ctx, conn))
}

func (c *connectorClient) Disconnect(ctx context.Context, conn sdk.Connection) error {
	rpc, err := c.m.current()
	if err != nil {
		return err
	}
	return c.result(ctx, "disconnecting", rpc.Disconnect(ctx, conn))
}

func (c *connectorClient) OpenSession(ctx context.Context, conn sdk.Connection) error {
	rpc, err := c.m.current()
	if err != nil {
		return err
	}
	return c.result(ctx, "opening a session", rpc.OpenSession(ctx, conn))
}

func (c *connectorClient) CloseSession(ctx context.Context, connectionID string) error {
	rpc, err := c.m.current()
	if err != nil {
		return err
	}
	return c.result(ctx, "closing a session", rpc.CloseSession(ctx, connectionID))
}

// servicesForPlugin is the sdk.Host one plugin reaches through the broker: the
// host's Services, bound to the plugin's connector name.
type servicesForPlugin struct {
	s         Services
	connector string
	log       *slog.Logger
}

var _ sdk.Host = (*servicesForPlugin)(nil)

func (p *servicesForPlugin) logged(op string, err error) error {
	var se *sdk.Error
	if err != nil && !errors.As(err, &se) {
		// The plugin gets a generic retryable error; the detail stays here.
		p.log.Error("host service failed", "op", op, "connector", p.connector, "error", err)
	}
	return err
}

func (p *servicesForPlugin) Emit(ctx context.Context, connectionID string, events ...sdk.Event) error {
	if p.s == nil {
		return sdk.Permanent("this host offers no services to plugins")
	}
	return p.logged("emit", p.s.Emit(ctx, p.connector, connectionID, events))
}

func (p *servicesForPlugin) GetState(ctx context.Context, connectionID, key string) ([]byte, error) {
	if p.s == nil {
		return nil, sdk.Permanent("this host offers no services to plugins")
	}
	v, err := p.s.GetState(ctx, p.connector, connectionID, key)
	return v, p.logged("get_state", err)
}

func (p *servicesForPlugin) SetState(ctx context.Context, connectionID, key string, value []byte) error {
	if p.s == nil {
		return sdk.Permanent("this host offers no services to plugins")
	}
	return p.logged("set_state", p.s.SetState(ctx, p.connector, connectionID, key, value))
}

func (p *servicesForPlugin) UpdateSession(ctx context.Context, connectionID string, u sdk.SessionUpdate) error {
	if p.s == nil {
		return sdk.Permanent("this host offers no services to plugins")
	}
	return p.logged("update_session", p.s.UpdateSession(ctx, p.connector, connectionID, u))
}

func (p *servicesForPlugin) Signal(ctx context.Context, connectionID string, sig sdk.Signal) error {
	if p.s == nil {
		return sdk.Permanent("this host offers no services to plugins")
	}
	return p.logged("signal", p.s.Signal(ctx, p.connector, connectionID, sig))
}
