package linkeddevice

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	waAdv "go.mau.fi/whatsmeow/proto/waAdv"
	"go.mau.fi/whatsmeow/types"

	"github.com/ponte-hub/ponte/deploy/testenv"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/testkit"
)

var quietLog = slog.New(slog.DiscardHandler)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// seedDevice saves a paired device in the store, as whatsmeow does after a
// pairing: real keys from sqlstore's NewDevice, a JID, the account identity.
func seedDevice(t testing.TB, ds *DeviceStore, user string, device uint8) types.JID {
	t.Helper()
	dev := ds.Container.NewDevice()
	jid := types.NewADJID(user, 0, device)
	dev.ID = &jid
	dev.LID = types.NewJID("9"+user[1:], types.HiddenUserServer)
	dev.PushName = "Shop " + user
	dev.Platform = "android"
	dev.Account = &waAdv.ADVSignedDeviceIdentity{
		Details:             randomBytes(40),
		AccountSignature:    randomBytes(64),
		AccountSignatureKey: randomBytes(32),
		DeviceSignature:     randomBytes(64),
	}
	if err := ds.Container.PutDevice(context.Background(), dev); err != nil {
		t.Fatalf("saving device %s: %v", jid, err)
	}
	return jid
}

func openStore(t testing.TB, url, schema string) *DeviceStore {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ds, err := OpenDeviceStore(ctx, url, schema, quietLog)
	if err != nil {
		t.Fatalf("opening the device store: %v", err)
	}
	t.Cleanup(func() { _ = ds.Close() })
	return ds
}

// TestIntegrationDeviceStore checks the device store on the real Postgres:
// whatsmeow's tables and version table in their own schema, an idempotent
// upgrade, devices that survive reopening.
func TestIntegrationDeviceStore(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresURL(t)
	for _, schema := range []string{DefaultStoreSchema, "ld_custom"} {
		t.Run(schema, func(t *testing.T) {
			ds := openStore(t, url, schema)
			jid := seedDevice(t, ds, "393331230001", 4)

			db, err := sql.Open("pgx", url)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var inSchema, elsewhere, version, devices int
			q := func(query string, dst *int, args ...any) {
				t.Helper()
				if err := db.QueryRow(query, args...).Scan(dst); err != nil {
					t.Fatalf("%s: %v", query, err)
				}
			}
			q(`SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name IN ('whatsmeow_device', 'whatsmeow_version')`, &inSchema, schema)
			q(`SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name LIKE 'whatsmeow%'`, &elsewhere)
			q(`SELECT version FROM `+schema+`.whatsmeow_version`, &version)
			q(`SELECT count(*) FROM `+schema+`.whatsmeow_device WHERE jid = $1`, &devices, jid.String())
			if inSchema != 2 || elsewhere != 0 || version < 1 || devices != 1 {
				t.Fatalf("tables in %s: %d (want 2), in public: %d, version %d, device rows %d", schema, inSchema, elsewhere, version, devices)
			}

			// A second open (another node, a restart) upgrades nothing and
			// finds the device with its keys.
			again := openStore(t, url, schema)
			var version2 int
			q(`SELECT version FROM `+schema+`.whatsmeow_version`, &version2)
			if version2 != version {
				t.Errorf("version moved from %d to %d on a second upgrade", version, version2)
			}
			dev, err := again.Container.GetDevice(context.Background(), jid)
			if err != nil || dev == nil {
				t.Fatalf("reloading %s: %v, %v", jid, dev, err)
			}
			orig, _ := ds.Container.GetDevice(context.Background(), jid)
			if !bytes.Equal(dev.IdentityKey.Priv[:], orig.IdentityKey.Priv[:]) || dev.PushName != "Shop 393331230001" {
				t.Error("the reloaded device differs")
			}
		})
	}
	if _, err := OpenDeviceStore(context.Background(), url, "Bad-Schema", quietLog); err == nil {
		t.Error("a schema name that needs quoting was accepted")
	}
}

// TestIntegrationProductionPluginOffline runs the production plugin binary
// (real whatsmeow) on a machine without a route to WhatsApp: a paired
// device loaded from the store reports disconnected "network unreachable"
// with a retry time, retries back off, actions answer Retryable, and after
// the process is killed a new one reloads the same device without pairing.
func TestIntegrationProductionPluginOffline(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresURL(t)
	ds := openStore(t, url, DefaultStoreSchema)
	jid := seedDevice(t, ds, "393331230002", 7)

	dir := t.TempDir()
	bin := buildPlugin(t, dir)
	launcher := withEnv(t, bin, map[string]string{EnvStoreURL: url})
	host := testkit.NewMemoryHost()
	conn := sdk.Connection{ID: "conn_offline", TenantID: "tenant_o"}
	if err := host.SetState(context.Background(), conn.ID, StateDeviceJID, []byte(jid.String())); err != nil {
		t.Fatal(err)
	}
	p := startPlugin(t, launcher, host, "debug")
	for _, a := range p.manifest.Actions {
		if strings.HasPrefix(a.Name, "test_") {
			t.Errorf("the production build declares %s", a.Name)
		}
	}
	opened := time.Now()
	p.open(t, conn)
	first, i := waitUpdate(t, host, conn.ID, 0, 30*time.Second, stateIs(sdk.SessionDisconnected))
	if !strings.HasPrefix(first.Reason, ReasonNetworkPrefix+": ") || first.RetryAt.IsZero() {
		t.Fatalf("first report %+v", first)
	}
	if d := first.RetryAt.Sub(opened); d < 1500*time.Millisecond || d > 15*time.Second {
		t.Errorf("first retry %v after opening, want about 2 s", d)
	}
	if first.Account == nil || first.Account.JID != jid.String() || first.Account.Phone != "+393331230002" || first.Account.PushName != "Shop 393331230002" {
		t.Errorf("account %+v", first.Account)
	}
	second, _ := waitUpdate(t, host, conn.ID, i+1, 30*time.Second, stateIs(sdk.SessionDisconnected))
	if gap := second.RetryAt.Sub(first.RetryAt); gap < 3200*time.Millisecond {
		t.Errorf("second retry only %v after the first: no backoff", gap)
	}
	t.Logf("offline: %q, retries at +%v and +%v", first.Reason, first.RetryAt.Sub(opened).Round(time.Millisecond), second.RetryAt.Sub(opened).Round(time.Millisecond))
	for _, u := range host.SessionUpdates(conn.ID) {
		if u.State == sdk.SessionPairing || u.QRCode != "" {
			t.Errorf("a paired device was asked to pair: %+v", u)
		}
	}

	_, err := p.invoke(t, conn, ActionSendText, map[string]any{"to": "+393339990001", "body": "hi", "ledger_id": "off_1"})
	if e := testkit.RequireKind(t, err, sdk.KindRetryable); e.Message != "session not connected" || e.Code != CodeNotConnected {
		t.Errorf("send offline: %v", e)
	}
	_, err = p.invoke(t, conn, ActionCheckNumbers, map[string]any{"phones": []string{"+393339990001"}})
	testkit.RequireKind(t, err, sdk.KindRetryable)
	_, err = p.invoke(t, conn, ActionStartPairing, map[string]any{})
	testkit.RequireKind(t, err, sdk.KindInvalid)
	_, err = p.invoke(t, sdk.Connection{ID: "conn_other"}, ActionSendText, map[string]any{"to": "+393339990001", "body": "hi", "ledger_id": "off_2"})
	if e := testkit.RequireKind(t, err, sdk.KindRetryable); e.Code != sdk.CodeSessionNotHeld {
		t.Errorf("not held: %v", e)
	}

	// Kill the process as a crash would; a new one (here, or another
	// node) reloads the device from the store: same JID, no pairing.
	p.bin.Kill()
	restarted := testkit.NewMemoryHost()
	if err := restarted.SetState(context.Background(), conn.ID, StateDeviceJID, []byte(jid.String())); err != nil {
		t.Fatal(err)
	}
	p2 := startPlugin(t, launcher, restarted, "info")
	p2.open(t, conn)
	u, _ := waitUpdate(t, restarted, conn.ID, 0, 30*time.Second, stateIs(sdk.SessionDisconnected))
	if u.Account == nil || u.Account.JID != jid.String() {
		t.Errorf("after the restart: %+v", u)
	}
	for _, u := range restarted.SessionUpdates(conn.ID) {
		if u.State == sdk.SessionPairing {
			t.Errorf("pairing after a restart: %+v", u)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p2.bin.Client.CloseSession(ctx, conn.ID); err != nil {
		t.Errorf("close: %v", err)
	}
	if dev, err := ds.Container.GetDevice(ctx, jid); err != nil || dev == nil {
		t.Errorf("the device is gone from the store after a close: %v", err)
	}

	// A device the store no longer has (deleted while the connection
	// still pointed at it): the connection pairs again.
	gone := sdk.Connection{ID: "conn_gone", TenantID: "tenant_o"}
	if err := restarted.SetState(ctx, gone.ID, StateDeviceJID, []byte("393339999999:1@s.whatsapp.net")); err != nil {
		t.Fatal(err)
	}
	p2.open(t, gone)
	waitUpdate(t, restarted, gone.ID, 0, 30*time.Second, stateIs(sdk.SessionDisconnected))
	if v, _ := restarted.State(gone.ID, StateDeviceJID); len(v) != 0 {
		t.Errorf("device_jid of a missing device kept: %q", v)
	}
	if log := p.bin.Logs(); !strings.Contains(log, "network unreachable") {
		t.Errorf("the plugin did not log the unreachable network:\n%s", log)
	}
}

// TestIntegrationPluginWithoutStore: without the store URL the plugin starts
// and serves its manifest, and OpenSession says what is missing.
func TestIntegrationPluginWithoutStore(t *testing.T) {
	t.Parallel()
	p := startPlugin(t, buildPlugin(t, t.TempDir()), testkit.NewMemoryHost(), "info")
	if p.manifest.Name != "linkeddevice" || !p.manifest.Sessions {
		t.Errorf("manifest %+v", p.manifest)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.bin.Client.OpenSession(ctx, sdk.Connection{ID: "conn_nostore"})
	if e := testkit.RequireKind(t, err, sdk.KindPermanent); !strings.Contains(e.Message, EnvStoreURL) {
		t.Errorf("message %q does not name %s", e.Message, EnvStoreURL)
	}
}

// TestIntegrationIdleClientMemory measures the memory of idle linked-device
// clients: 1,000 paired devices in the store, loaded by the production
// plugin and not connected (this machine has no route to WhatsApp), and the
// CPU they take while they back off. It runs only with
// PONTE_BENCH_LINKEDDEVICE=1 (PONTE_BENCH_LINKEDDEVICE_N sets the count).
func TestIntegrationIdleClientMemory(t *testing.T) {
	if os.Getenv("PONTE_BENCH_LINKEDDEVICE") != "1" {
		t.Skip("set PONTE_BENCH_LINKEDDEVICE=1 to measure idle client memory")
	}
	n := 1000
	if s := os.Getenv("PONTE_BENCH_LINKEDDEVICE_N"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	url := testenv.PostgresURL(t)
	ds := openStore(t, url, DefaultStoreSchema)
	host := testkit.NewMemoryHost()
	conns := make([]sdk.Connection, n)
	for i := range n {
		jid := seedDevice(t, ds, fmt.Sprintf("39333%07d", i), 3)
		conns[i] = sdk.Connection{ID: fmt.Sprintf("conn_%04d", i), TenantID: "tenant_bench"}
		if err := host.SetState(context.Background(), conns[i].ID, StateDeviceJID, []byte(jid.String())); err != nil {
			t.Fatal(err)
		}
	}
	bin := buildPlugin(t, t.TempDir())
	p := startPlugin(t, withEnv(t, bin, map[string]string{EnvStoreURL: url}), host, "warn")
	pid := pluginPID(t, bin)
	time.Sleep(2 * time.Second)
	before := rssKB(t, pid)

	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				octx, ocancel := context.WithTimeout(context.Background(), time.Minute)
				if err := p.bin.Client.OpenSession(octx, conns[i]); err != nil {
					t.Errorf("OpenSession %s: %v", conns[i].ID, err)
				}
				ocancel()
			}
		}()
	}
	wg.Wait()
	opened := time.Since(start)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	disconnected := func() int {
		c := 0
		for _, conn := range conns {
			for _, u := range host.SessionUpdates(conn.ID) {
				if u.State == sdk.SessionDisconnected {
					c++
					break
				}
			}
		}
		return c
	}
	deadline := time.Now().Add(5 * time.Minute)
	for disconnected() < n {
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("only %d of %d sessions reported disconnected", disconnected(), n)
		}
		time.Sleep(500 * time.Millisecond)
	}
	allReported := time.Since(start)
	// Let the first retries pass and the heap settle, then measure memory
	// and the CPU the backing-off sessions take over 30 s.
	time.Sleep(10 * time.Second)
	after := rssKB(t, pid)
	cpu0 := cpuTicks(t, pid)
	time.Sleep(30 * time.Second)
	cpu1 := cpuTicks(t, pid)
	final := rssKB(t, pid)
	perClient := float64(after-before) / 1024 / float64(n)
	cpuPct := float64(cpu1-cpu0) / 100 / 30 * 100 // clock ticks are 1/100 s on Linux
	report := fmt.Sprintf("linked-device idle clients: %d devices loaded, not connected (no network): RSS %.1f MB before, %.1f MB after (%.1f MB 30 s later); %.3f MB per client; CPU %.1f%% of one core while backing off; opened in %v, all disconnected after %v; %s %s/%s, GOMAXPROCS=%d, %s",
		n, float64(before)/1024, float64(after)/1024, float64(final)/1024, perClient, cpuPct, opened.Round(time.Millisecond), allReported.Round(time.Millisecond),
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), cpuModel())
	t.Log(report)
	fmt.Println(report)
	// PONTE_BENCH_LINKEDDEVICE_WATCH=<seconds> samples the RSS longer, to
	// tell garbage awaiting collection from growth.
	if s := os.Getenv("PONTE_BENCH_LINKEDDEVICE_WATCH"); s != "" {
		secs, _ := strconv.Atoi(s)
		for end := time.Now().Add(time.Duration(secs) * time.Second); time.Now().Before(end); {
			time.Sleep(15 * time.Second)
			fmt.Printf("  RSS %.1f MB\n", float64(rssKB(t, pid))/1024)
		}
	}
	if perClient >= 2 {
		t.Errorf("%.3f MB per idle client, the goal is under 2 MB", perClient)
	}
}

// cpuTicks returns a process's user+system CPU time in clock ticks.
func cpuTicks(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start after
	// the last ')'; utime and stime are fields 14 and 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			if _, v, ok := strings.Cut(line, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return "unknown CPU"
}
