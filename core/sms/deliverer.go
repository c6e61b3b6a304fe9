package sms

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Deliverer defaults.
const (
	DefaultCallbackInterval    = time.Second
	DefaultCallbackTimeout     = 10 * time.Second
	DefaultCallbackMaxAttempts = 6
	DefaultCallbackBackoff     = 5 * time.Second
	DefaultCallbackWatch       = 72 * time.Hour
	maxCallbackBackoff         = 10 * time.Minute
)

// DelivererOptions configures a [Deliverer].
type DelivererOptions struct {
	// Interval is how often the ledger is polled for status changes
	// (default 1 s). The messaging core does not notify status changes, so a
	// client hears of one up to Interval after the ledger has it (plus the
	// callback's own time).
	Interval time.Duration
	// Batch bounds the callbacks taken per poll (default 100).
	Batch int
	// Concurrency bounds the callbacks in flight (default 8).
	Concurrency int
	// Timeout bounds one callback request, connection included (default
	// 10 s).
	Timeout time.Duration
	// MaxAttempts is how many times one status is offered to the client
	// before it is given up (default 6). Later statuses are still offered.
	MaxAttempts int
	// Backoff is the wait before the first retry, doubled for each further
	// one up to 10 min (default 5 s): 5 s, 10 s, 20 s, 40 s, 80 s.
	Backoff time.Duration
	// WatchFor is how long after its creation a message's status is watched
	// (default 72 h). WhatsApp reports read only if the recipient allows
	// read receipts, so a delivered message is not final; the watch ends it.
	WatchFor time.Duration
	// AllowPrivateNetworks lets callbacks reach loopback, private,
	// link-local and other non-public addresses. Off by default: a
	// StatusCallback URL is chosen by a tenant, and must not let a tenant
	// make Ponte call services on its own network (cloud metadata
	// endpoints, the database, the admin API). The check is made on the
	// address actually dialled, after DNS, so a hostname resolving to a
	// private address is refused too.
	AllowPrivateNetworks bool
	// Transport replaces the HTTP transport (tests); nil means Ponte's, with
	// the address check above.
	Transport http.RoundTripper
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Deliverer reports status changes of SMS-compatible messages to their
// StatusCallback URLs, the way Twilio does: a POST of the form
// MessageSid, SmsSid, AccountSid, From, To, MessageStatus, SmsStatus,
// ApiVersion, and ErrorCode and ErrorMessage for a failed or undelivered
// message, each time the status changes after the create request answered
// (never for the status that answer carried).
//
// It polls: rows whose ledger status differs from the one last reported are
// found through an index of the rows still watched. Each is claimed for a
// while before its callback, so several deliverers (one per worker process)
// share the work without sending a callback twice in the common case;
// delivery is at least once (a process dying between the POST and its
// record repeats it), and each request carries I-Twilio-Idempotency-Token so
// a receiver can tell a repetition, as with Twilio's own webhooks.
//
// A callback succeeds on any 2xx answer. Anything else (another status, a
// timeout, a refused connection, a redirect to another host, which is never
// followed) is retried with backoff up to MaxAttempts, then given up with a
// warning. When the ledger moved on meanwhile, the retry reports the newest
// status: a client learns where its message is, not every step (as with
// Twilio, whose callbacks may also arrive out of order or be skipped).
//
// Callbacks are not signed. Twilio signs with X-Twilio-Signature, an HMAC
// keyed by the account's auth token; Ponte stores API keys only as hashes,
// so it has no shared secret to sign with, and a signature a client could
// not verify would be worse than none. Clients that need to authenticate
// callbacks put a secret in the URL (a query token, or user:password@,
// which is sent as HTTP Basic auth, as Twilio does); URLs are never logged.
type Deliverer struct {
	pool   *pgxpool.Pool
	opts   DelivererOptions
	client *http.Client
	log    *slog.Logger

	mu        sync.Mutex
	lastSweep time.Time
}

// NewDeliverer returns a Deliverer on pool.
func NewDeliverer(pool *pgxpool.Pool, opts DelivererOptions) *Deliverer {
	opts.Interval = cmp.Or(opts.Interval, DefaultCallbackInterval)
	opts.Batch = cmp.Or(opts.Batch, 100)
	opts.Concurrency = cmp.Or(opts.Concurrency, 8)
	opts.Timeout = cmp.Or(opts.Timeout, DefaultCallbackTimeout)
	opts.MaxAttempts = cmp.Or(opts.MaxAttempts, DefaultCallbackMaxAttempts)
	opts.Backoff = cmp.Or(opts.Backoff, DefaultCallbackBackoff)
	opts.WatchFor = cmp.Or(opts.WatchFor, DefaultCallbackWatch)
	tr := opts.Transport
	if tr == nil {
		tr = newTransport(opts.Timeout, opts.AllowPrivateNetworks)
	}
	return &Deliverer{
		pool: pool, opts: opts, log: cmp.Or(opts.Logger, slog.Default()),
		client: &http.Client{Transport: tr, Timeout: opts.Timeout, CheckRedirect: sameHostRedirects},
	}
}

// newTransport is the callbacks' transport: no proxy from the environment
// (a callback must reach the URL the tenant gave, and the address check
// must see the real destination), and the address check on every dial.
func newTransport(timeout time.Duration, allowPrivate bool) *http.Transport {
	d := &net.Dialer{Timeout: min(timeout, 5*time.Second)}
	if !allowPrivate {
		d.Control = sdk.PublicOnlyControl
	}
	return &http.Transport{
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   min(timeout, 5*time.Second),
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// errPrivateAddress is a callback refused because its address is not public.
var errPrivateAddress = errors.New("the callback address is not a public internet address")

// sameHostRedirects follows a few redirects on the callback's own host and
// none elsewhere: a redirect elsewhere is answered as the 3xx it is, a
// failure of the callback.
func sameHostRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 3 {
		return errors.New("too many redirects")
	}
	if !strings.EqualFold(req.URL.Host, via[0].URL.Host) {
		return http.ErrUseLastResponse
	}
	return nil
}

// Run delivers callbacks every Interval until ctx ends.
func (d *Deliverer) Run(ctx context.Context) error {
	t := time.NewTicker(d.opts.Interval)
	defer t.Stop()
	for {
		if _, err := d.RunOnce(ctx); err != nil && ctx.Err() == nil {
			d.log.ErrorContext(ctx, "sms: delivering status callbacks", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// pending is a claimed row with its ledger state.
type pending struct {
	sid, tenantID, accountSid, from, to, callbackURL, lastStatus string
	attempts                                                     int
	ledger                                                       messaging.Message
}

// RunOnce claims the rows whose ledger status changed since their last
// callback and delivers them; it returns how many callbacks it attempted.
func (d *Deliverer) RunOnce(ctx context.Context) (int, error) {
	if err := d.sweep(ctx); err != nil {
		return 0, err
	}
	batch, err := d.claim(ctx)
	if err != nil {
		return 0, err
	}
	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, d.opts.Concurrency)
		mu       sync.Mutex
		attempts int
		firstErr error
	)
	for _, p := range batch {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			tried, err := d.deliver(ctx, p)
			mu.Lock()
			defer mu.Unlock()
			if tried {
				attempts++
			}
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	return attempts, firstErr
}

// sweep ends, at most once a minute, the watch of rows older than WatchFor.
func (d *Deliverer) sweep(ctx context.Context) error {
	d.mu.Lock()
	due := time.Since(d.lastSweep) >= time.Minute
	if due {
		d.lastSweep = time.Now()
	}
	d.mu.Unlock()
	if !due {
		return nil
	}
	_, err := d.pool.Exec(ctx, `
		UPDATE sms_messages SET callback_next_at = NULL
		WHERE callback_next_at IS NOT NULL AND created_at < now() - make_interval(secs => $1)`, d.opts.WatchFor.Seconds())
	if err != nil {
		return fmt.Errorf("ending old status watches: %w", err)
	}
	return nil
}

// claimFor is how long a claimed row is left to its deliverer before another
// may take it: far more than one callback can take.
func (d *Deliverer) claimFor() time.Duration { return 4*d.opts.Timeout + 30*time.Second }

// claim takes up to Batch due rows whose ledger status moved on, pushing
// their next look past claimFor so no other deliverer takes them meanwhile.
func (d *Deliverer) claim(ctx context.Context) ([]pending, error) {
	var out []pending
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT s.sid, s.tenant_id, s.account_sid, s.from_address, s.to_address, s.status_callback,
			       s.callback_status, s.callback_attempts,
			       m.id, m.status, m.sent_at, COALESCE(m.status_reason, ''), COALESCE(m.error_code, ''),
			       COALESCE(m.error_detail, '')
			FROM sms_messages s JOIN messages m ON m.id = s.message_id
			WHERE s.callback_next_at <= now() AND m.status <> s.ledger_status
			ORDER BY s.callback_next_at
			LIMIT $1
			FOR UPDATE OF s SKIP LOCKED`, d.opts.Batch)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (pending, error) {
			var p pending
			err := r.Scan(&p.sid, &p.tenantID, &p.accountSid, &p.from, &p.to, &p.callbackURL, &p.lastStatus, &p.attempts,
				&p.ledger.ID, &p.ledger.Status, &p.ledger.SentAt, &p.ledger.StatusReason, &p.ledger.ErrorCode, &p.ledger.ErrorDetail)
			return p, err
		})
		if err != nil || len(out) == 0 {
			return err
		}
		sids := make([]string, len(out))
		for i, p := range out {
			sids[i] = p.sid
		}
		_, err = tx.Exec(ctx, `UPDATE sms_messages SET callback_next_at = now() + make_interval(secs => $2) WHERE sid = ANY($1)`,
			sids, d.claimFor().Seconds())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claiming status callbacks: %w", err)
	}
	return out, nil
}

// deliver reports one row's new status and records the outcome; tried is
// false when the change needed no callback (a ledger step within one Twilio
// status, e.g. deferred to queued).
func (d *Deliverer) deliver(ctx context.Context, p pending) (tried bool, err error) {
	status := twilioStatus(p.ledger)
	if status == p.lastStatus {
		return false, d.record(ctx, p, status, true, "")
	}
	cerr := d.post(ctx, p, status)
	if cerr == nil {
		d.log.DebugContext(ctx, "sms: status callback delivered", "sid", p.sid, "tenant", p.tenantID, "status", status)
		return true, d.record(ctx, p, status, true, "")
	}
	if ctx.Err() != nil {
		// Shutting down: leave the row claimed; it is taken again after
		// the claim runs out.
		return true, nil
	}
	return true, d.record(ctx, p, status, false, cerr.Error())
}

// post sends the callback.
func (d *Deliverer) post(ctx context.Context, p pending, status string) error {
	form := url.Values{
		"MessageSid": {p.sid}, "SmsSid": {p.sid}, "AccountSid": {p.accountSid},
		"From": {p.from}, "To": {p.to},
		"MessageStatus": {status}, "SmsStatus": {status}, "ApiVersion": {APIVersion},
	}
	if code, msg := twilioError(p.ledger); code != 0 {
		form.Set("ErrorCode", strconv.Itoa(code))
		form.Set("ErrorMessage", msg)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.callbackURL, strings.NewReader(form.Encode()))
	if err != nil {
		return errors.New("the callback URL is not valid")
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "Ponte-SMS-Callback/1.0")
	req.Header.Set("I-Twilio-Idempotency-Token", p.sid+"-"+status)
	resp, err := d.client.Do(req)
	if err != nil {
		return callbackError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the callback answered %d", resp.StatusCode)
	}
	return nil
}

// callbackError is err without the URL, which may carry the client's
// credentials or tokens and is never logged or stored.
func callbackError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, sdk.ErrNonPublicAddress) {
		return errPrivateAddress
	}
	return err
}

// record writes a callback's outcome. ok covers a delivered callback and a
// change that needed none: the row moves on to the ledger's status. A
// failure waits for its retry, or after MaxAttempts gives this status up (the
// row still waits for the next change).
func (d *Deliverer) record(ctx context.Context, p pending, status string, ok bool, cerr string) error {
	ctx = context.WithoutCancel(ctx)
	if ok {
		_, err := d.pool.Exec(ctx, `
			UPDATE sms_messages SET callback_status = $2, ledger_status = $3, callback_attempts = 0, callback_error = NULL,
			       callback_at = CASE WHEN $5 THEN now() ELSE callback_at END,
			       callback_next_at = CASE WHEN $4 THEN NULL ELSE now() END
			WHERE sid = $1`, p.sid, status, string(p.ledger.Status), Final(status), status != p.lastStatus)
		if err != nil {
			return fmt.Errorf("recording the status callback of %s: %w", p.sid, err)
		}
		return nil
	}
	attempts := p.attempts + 1
	if attempts >= d.opts.MaxAttempts {
		d.log.WarnContext(ctx, "sms: status callback given up", "sid", p.sid, "tenant", p.tenantID, "status", status,
			"attempts", attempts, "error", cerr)
		_, err := d.pool.Exec(ctx, `
			UPDATE sms_messages SET ledger_status = $2, callback_attempts = 0, callback_error = $3,
			       callback_next_at = CASE WHEN $4 THEN NULL ELSE now() END
			WHERE sid = $1`, p.sid, string(p.ledger.Status), cerr, Final(status))
		if err != nil {
			return fmt.Errorf("giving up the status callback of %s: %w", p.sid, err)
		}
		return nil
	}
	wait := d.backoff(attempts)
	d.log.InfoContext(ctx, "sms: status callback failed; will retry", "sid", p.sid, "tenant", p.tenantID, "status", status,
		"attempt", attempts, "retry_in", wait, "error", cerr)
	_, err := d.pool.Exec(ctx, `
		UPDATE sms_messages SET callback_attempts = $2, callback_error = $3,
		       callback_next_at = now() + make_interval(secs => $4)
		WHERE sid = $1`, p.sid, attempts, cerr, wait.Seconds())
	if err != nil {
		return fmt.Errorf("scheduling the retry of the status callback of %s: %w", p.sid, err)
	}
	return nil
}

// backoff is the wait before retry number attempt (1-based).
func (d *Deliverer) backoff(attempt int) time.Duration {
	w := d.opts.Backoff
	for i := 1; i < attempt && w < maxCallbackBackoff; i++ {
		w *= 2
	}
	return min(w, maxCallbackBackoff)
}
