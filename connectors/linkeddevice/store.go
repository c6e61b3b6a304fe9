package linkeddevice

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types"
	waLog "go.mau.fi/whatsmeow/util/log"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// schemaPattern is what a store schema name may look like: a plain
// lower-case identifier, so it never needs quoting rules beyond pgx's.
var schemaPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// storeMaxConns bounds the device store's connections per plugin process.
// Idle sessions touch the store rarely; a burst of 1,000 sessions opening at
// once queues on this pool instead of exhausting Postgres's connections.
const storeMaxConns = 16

// DeviceStore is whatsmeow's device store (sqlstore) on Postgres, in a schema
// of its own, with whatsmeow's own version table (whatsmeow_version) there.
type DeviceStore struct {
	// Container is whatsmeow's store: GetDevice, NewDevice, PutDevice.
	Container *sqlstore.Container
	db        *sql.DB
}

// OpenDeviceStore opens the device store at url (a Postgres URL or DSN) in
// schema, creating the schema when it is missing and upgrading whatsmeow's
// tables to the version this build of whatsmeow needs (idempotent). The
// connection's search_path is the schema, so whatsmeow's unqualified table
// names land there.
func OpenDeviceStore(ctx context.Context, url, schema string, log *slog.Logger) (*DeviceStore, error) {
	if schema == "" {
		schema = DefaultStoreSchema
	}
	if !schemaPattern.MatchString(schema) {
		return nil, fmt.Errorf("device store schema %q is not a plain lower-case identifier", schema)
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, errors.New("parsing the device store URL: not a valid Postgres URL or DSN")
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["search_path"] = schema
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(storeMaxConns)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("creating the device store schema %s: %w", schema, err)
	}
	// whatsmeow's upgrader (mautrix dbutil) asks information_schema whether
	// its version table exists without naming a schema, so a whatsmeow
	// store in another schema of the same database makes it skip creating
	// the table here and then fail to read it. Creating the table first, in
	// exactly dbutil's shape, keeps each schema's store its own.
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+pgx.Identifier{schema, "whatsmeow_version"}.Sanitize()+" (version INTEGER, compat INTEGER)"); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("creating the device store version table in %s: %w", schema, err)
	}
	container := sqlstore.NewWithDB(db, "postgres", newWALogger(log, "Store"))
	if err := container.Upgrade(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("upgrading the device store in schema %s: %w", schema, err)
	}
	return &DeviceStore{Container: container, db: db}, nil
}

// Close closes the store's database connections.
func (s *DeviceStore) Close() error { return s.db.Close() }

var _ backend = (*storeBackend)(nil)

// storeBackend is the production backend: real whatsmeow clients on the
// device store named by the environment, opened on first use.
type storeBackend struct {
	log    *slog.Logger
	url    string
	schema string

	mu    sync.Mutex
	store *DeviceStore
}

func newStoreBackend(log *slog.Logger) *storeBackend {
	schema := os.Getenv(EnvStoreSchema)
	if schema == "" {
		schema = DefaultStoreSchema
	}
	// The name the linked device shows in the phone's "Linked devices".
	store.SetOSInfo("Ponte", [3]uint32{0, 1, 0})
	return &storeBackend{log: log, url: os.Getenv(EnvStoreURL), schema: schema}
}

// open returns the device store, opening it on first use. A failure is not
// remembered: the next session tries again (Postgres may be starting).
func (b *storeBackend) open(ctx context.Context) (*DeviceStore, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.store != nil {
		return b.store, nil
	}
	if b.url == "" {
		return nil, sdk.Permanent("the device store is not configured: the plugin needs %s (a Postgres URL) in its environment", EnvStoreURL)
	}
	s, err := OpenDeviceStore(ctx, b.url, b.schema, b.log)
	if err != nil {
		return nil, sdk.Retryable("opening the device store: %v", err)
	}
	b.store = s
	return s, nil
}

func (b *storeBackend) client(ctx context.Context, jid types.JID, log waLog.Logger) (waClient, bool, error) {
	s, err := b.open(ctx)
	if err != nil {
		return nil, false, err
	}
	var dev *store.Device
	if jid.IsEmpty() {
		dev = s.Container.NewDevice()
	} else {
		dev, err = s.Container.GetDevice(ctx, jid)
		if err != nil {
			return nil, false, sdk.Retryable("loading device %s from the store: %v", jid, err)
		}
		if dev == nil {
			return nil, false, nil
		}
	}
	cli := whatsmeow.NewClient(dev, log)
	// The session reconnects itself, with backoff and jitter and a report
	// of every state; whatsmeow's linear auto-reconnect would reconnect
	// behind its back.
	cli.EnableAutoReconnect = false
	cli.InitialAutoReconnect = false
	// Acknowledge a message to WhatsApp only after the handler returned,
	// i.e. after the host stored the event: a crash in between makes
	// WhatsApp deliver it again instead of losing it.
	cli.SynchronousAck = true
	// Ponte does not import chat history; downloading the history blobs a
	// phone pushes after pairing would cost memory for nothing.
	cli.ManualHistorySyncDownload = true
	return liveClient{cli}, true, nil
}
