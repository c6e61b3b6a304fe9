package consent

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ponte-hub/ponte/core/store"
)

// Settings are a tenant's messaging settings.
type Settings struct {
	TenantID string
	// Timezone is the IANA name quiet hours are read in, e.g. "Europe/Rome".
	Timezone string
	// QuietHoursStart and QuietHoursEnd are local "HH:MM" times; both empty
	// means no quiet hours. A start after the end spans midnight
	// (21:00-08:00). The window includes its start and excludes its end.
	QuietHoursStart string
	QuietHoursEnd   string
	// StopKeywords and StartKeywords opt a contact out or back in when a
	// whole inbound message matches one of them (see Normalize).
	StopKeywords  []string
	StartKeywords []string
	// StopConfirmation and StartConfirmation are sent once in reply.
	StopConfirmation  string
	StartConfirmation string
	UpdatedAt         time.Time
}

// SettingsUpdate changes some settings; nil fields are kept.
type SettingsUpdate struct {
	Timezone *string
	// QuietHoursStart and QuietHoursEnd are given together; two empty strings
	// remove quiet hours.
	QuietHoursStart   *string
	QuietHoursEnd     *string
	StopKeywords      *[]string
	StartKeywords     *[]string
	StopConfirmation  *string
	StartConfirmation *string
}

// Limits of the settings.
const (
	MaxKeywords         = 20
	MaxKeywordLength    = 50
	MaxConfirmationText = 1024
)

// compiled are settings in the form checks use.
type compiled struct {
	Settings
	loc                  *time.Location
	quietStart, quietEnd int // minutes after local midnight; -1 when none
	stop, start          map[string]bool
}

type cachedSettings struct {
	c       *compiled
	expires time.Time
}

var clockRE = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])$`)

// parseClock parses "HH:MM" into minutes after midnight.
func parseClock(s string) (int, bool) {
	m := clockRE.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	h, _ := strconv.Atoi(m[1])
	mm, _ := strconv.Atoi(m[2])
	return h*60 + mm, true
}

// compile checks st and prepares it for checks; problems are reported per
// field, in the API's names.
func compile(st Settings) (*compiled, error) {
	var problems []store.FieldProblem
	add := func(field, msg string) { problems = append(problems, store.FieldProblem{Field: field, Message: msg}) }
	c := &compiled{Settings: st, quietStart: -1, quietEnd: -1}

	loc, err := time.LoadLocation(st.Timezone)
	if err != nil || st.Timezone == "" || st.Timezone == "Local" {
		add("timezone", "not an IANA time zone name (e.g. Europe/Rome)")
	}
	c.loc = loc

	switch {
	case st.QuietHoursStart == "" && st.QuietHoursEnd == "":
	case st.QuietHoursStart == "" || st.QuietHoursEnd == "":
		add("quiet_hours_start", "quiet hours need both a start and an end (or neither)")
	default:
		a, okA := parseClock(st.QuietHoursStart)
		b, okB := parseClock(st.QuietHoursEnd)
		if !okA {
			add("quiet_hours_start", "must be HH:MM (00:00 to 23:59)")
		}
		if !okB {
			add("quiet_hours_end", "must be HH:MM (00:00 to 23:59)")
		}
		if okA && okB && a == b {
			add("quiet_hours_end", "must differ from the start")
		}
		c.quietStart, c.quietEnd = a, b
	}

	keywords := func(field string, list []string) map[string]bool {
		set := map[string]bool{}
		if len(list) == 0 {
			add(field, "at least one keyword is required")
		}
		if len(list) > MaxKeywords {
			add(field, fmt.Sprintf("at most %d keywords", MaxKeywords))
		}
		for _, k := range list {
			n := Normalize(k)
			switch {
			case n == "":
				add(field, fmt.Sprintf("keyword %q is empty once normalised", k))
			case len([]rune(k)) > MaxKeywordLength:
				add(field, fmt.Sprintf("keyword %q is longer than %d characters", k, MaxKeywordLength))
			case set[n]:
				add(field, fmt.Sprintf("keyword %q is given twice (case and accents do not count)", k))
			}
			set[n] = true
		}
		return set
	}
	c.stop = keywords("stop_keywords", st.StopKeywords)
	c.start = keywords("start_keywords", st.StartKeywords)
	for k := range c.stop {
		if c.start[k] {
			add("start_keywords", fmt.Sprintf("%q is also a stop keyword", k))
		}
	}
	for field, text := range map[string]string{"stop_confirmation": st.StopConfirmation, "start_confirmation": st.StartConfirmation} {
		if n := len([]rune(text)); n == 0 || n > MaxConfirmationText {
			add(field, fmt.Sprintf("required, at most %d characters", MaxConfirmationText))
		}
	}
	if len(problems) > 0 {
		return nil, &store.ValidationError{Problems: problems}
	}
	return c, nil
}

// quietUntil reports whether at falls in the quiet window and, if so, when
// the window ends. Wall-clock arithmetic is done with time.Date in the
// tenant's location, so the end is right across daylight-saving changes (the
// night the clocks move is an hour shorter or longer in UTC); an end that
// falls in a skipped hour is normalised by time.Date to just after the gap.
func (c *compiled) quietUntil(at time.Time) (time.Time, bool) {
	if c.quietStart < 0 {
		return time.Time{}, false
	}
	local := at.In(c.loc)
	now := local.Hour()*60 + local.Minute()
	y, m, d := local.Date()
	var endDay int
	switch {
	case c.quietStart < c.quietEnd: // same day, e.g. 12:00-14:00
		if now < c.quietStart || now >= c.quietEnd {
			return time.Time{}, false
		}
		endDay = d
	case now >= c.quietStart: // spans midnight, evening part: ends tomorrow
		endDay = d + 1
	case now < c.quietEnd: // spans midnight, morning part: ends today
		endDay = d
	default:
		return time.Time{}, false
	}
	until := time.Date(y, m, endDay, c.quietEnd/60, c.quietEnd%60, 0, 0, c.loc)
	if !until.After(at) {
		// Only reachable when the end is in an hour the clocks skipped and
		// time.Date resolved it before at; the window is over.
		return time.Time{}, false
	}
	return until, true
}

// settingsFor returns the tenant's compiled settings from the cache, loading
// them when missing or older than the TTL.
func (s *Service) settingsFor(ctx context.Context, tenantID string) (*compiled, error) {
	now := time.Now()
	s.mu.Lock()
	cs, ok := s.settings[tenantID]
	s.mu.Unlock()
	if ok && now.Before(cs.expires) {
		return cs.c, nil
	}
	st, err := s.loadSettings(ctx, s.pool, tenantID, false)
	if err != nil {
		return nil, err
	}
	c, err := compile(st)
	if err != nil {
		// Only settings written around this package's validation get here;
		// checks must not stop because of them, so fall back per field.
		s.log.Error("consent: stored messaging settings are invalid; using defaults where needed", "tenant", tenantID, "error", err)
		c = compileLenient(st)
	}
	s.mu.Lock()
	s.settings[tenantID] = cachedSettings{c: c, expires: now.Add(s.ttl)}
	s.mu.Unlock()
	return c, nil
}

// compileLenient compiles settings that failed validation, keeping what is
// usable: an unknown zone is UTC, bad quiet hours are none.
func compileLenient(st Settings) *compiled {
	c := &compiled{Settings: st, loc: time.UTC, quietStart: -1, quietEnd: -1, stop: map[string]bool{}, start: map[string]bool{}}
	if loc, err := time.LoadLocation(st.Timezone); err == nil {
		c.loc = loc
	}
	a, okA := parseClock(st.QuietHoursStart)
	b, okB := parseClock(st.QuietHoursEnd)
	if okA && okB && a != b {
		c.quietStart, c.quietEnd = a, b
	}
	for _, k := range st.StopKeywords {
		if n := Normalize(k); n != "" {
			c.stop[n] = true
		}
	}
	for _, k := range st.StartKeywords {
		if n := Normalize(k); n != "" && !c.stop[n] {
			c.start[n] = true
		}
	}
	return c
}

const settingsColumns = `tenant_id, timezone, COALESCE(to_char(quiet_hours_start, 'HH24:MI'), ''),
       COALESCE(to_char(quiet_hours_end, 'HH24:MI'), ''), stop_keywords, start_keywords,
       stop_confirmation, start_confirmation, updated_at`

// querierExec is a pool or a transaction.
type querierExec interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func isForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}

// loadSettings reads the tenant's settings row, creating it with the
// schema's defaults when the tenant has none yet (the defaults live in one
// place, the migration). forUpdate locks the row.
func (s *Service) loadSettings(ctx context.Context, q querierExec, tenantID string, forUpdate bool) (Settings, error) {
	lock := ""
	if forUpdate {
		lock = " FOR UPDATE"
	}
	read := func() (Settings, error) {
		var st Settings
		err := q.QueryRow(ctx, `SELECT `+settingsColumns+` FROM tenant_settings WHERE tenant_id = $1`+lock, tenantID).Scan(
			&st.TenantID, &st.Timezone, &st.QuietHoursStart, &st.QuietHoursEnd, &st.StopKeywords, &st.StartKeywords,
			&st.StopConfirmation, &st.StartConfirmation, &st.UpdatedAt)
		return st, err
	}
	st, err := read()
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := q.Exec(ctx, `INSERT INTO tenant_settings (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING`, tenantID); err != nil {
			if isForeignKeyViolation(err) {
				return Settings{}, store.ErrNotFound
			}
			return Settings{}, fmt.Errorf("creating messaging settings: %w", err)
		}
		st, err = read()
	}
	if err != nil {
		return Settings{}, fmt.Errorf("reading messaging settings: %w", err)
	}
	return st, nil
}

// Settings returns the tenant's messaging settings (the defaults until
// changed). store.ErrNotFound when the tenant does not exist.
func (s *Service) Settings(ctx context.Context, tenantID string) (Settings, error) {
	return s.loadSettings(ctx, s.pool, tenantID, false)
}

// UpdateSettings changes the tenant's settings. The result is validated as a
// whole (a *store.ValidationError lists every problem, under the API's field
// names) and seen at once by this Service's checks and keyword matching;
// other processes see it within Options.SettingsTTL.
func (s *Service) UpdateSettings(ctx context.Context, tenantID string, u SettingsUpdate) (Settings, error) {
	var out Settings
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		st, err := s.loadSettings(ctx, tx, tenantID, true)
		if err != nil {
			return err
		}
		if (u.QuietHoursStart == nil) != (u.QuietHoursEnd == nil) {
			return &store.ValidationError{Problems: []store.FieldProblem{{Field: "quiet_hours_start", Message: "quiet_hours_start and quiet_hours_end are changed together"}}}
		}
		set := func(dst *string, v *string) {
			if v != nil {
				*dst = *v
			}
		}
		set(&st.Timezone, u.Timezone)
		set(&st.QuietHoursStart, u.QuietHoursStart)
		set(&st.QuietHoursEnd, u.QuietHoursEnd)
		set(&st.StopConfirmation, u.StopConfirmation)
		set(&st.StartConfirmation, u.StartConfirmation)
		if u.StopKeywords != nil {
			st.StopKeywords = *u.StopKeywords
		}
		if u.StartKeywords != nil {
			st.StartKeywords = *u.StartKeywords
		}
		if _, err := compile(st); err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `
			UPDATE tenant_settings SET timezone = $2, quiet_hours_start = NULLIF($3, '')::time, quiet_hours_end = NULLIF($4, '')::time,
			       stop_keywords = $5, start_keywords = $6, stop_confirmation = $7, start_confirmation = $8, updated_at = now()
			WHERE tenant_id = $1
			RETURNING `+settingsColumns,
			tenantID, st.Timezone, st.QuietHoursStart, st.QuietHoursEnd, st.StopKeywords, st.StartKeywords,
			st.StopConfirmation, st.StartConfirmation).Scan(
			&out.TenantID, &out.Timezone, &out.QuietHoursStart, &out.QuietHoursEnd, &out.StopKeywords, &out.StartKeywords,
			&out.StopConfirmation, &out.StartConfirmation, &out.UpdatedAt)
		if err != nil {
			return fmt.Errorf("writing messaging settings: %w", err)
		}
		return nil
	})
	if err != nil {
		var ve *store.ValidationError
		if errors.As(err, &ve) || errors.Is(err, store.ErrNotFound) {
			return Settings{}, err
		}
		return Settings{}, fmt.Errorf("updating messaging settings: %w", err)
	}
	s.mu.Lock()
	delete(s.settings, tenantID)
	s.mu.Unlock()
	return out, nil
}
