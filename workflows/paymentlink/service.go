package paymentlink

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Expiry bounds of a payment link.
const (
	DefaultExpiresIn = 24 * time.Hour
	MaxExpiresIn     = 30 * 24 * time.Hour
)

// Errors the API maps to responses.
var (
	// ErrNotFound: no such link for the tenant (the store's sentinel).
	ErrNotFound = store.ErrNotFound
	// ErrInvalid is wrapped by every *InvalidError.
	ErrInvalid = errors.New("invalid payment link request")
	// ErrIdempotencyConflict: the idempotency key was used for a different request.
	ErrIdempotencyConflict = errors.New("idempotency key already used for a different payment link")
	// ErrInvalidCursor: a list cursor this service did not hand out.
	ErrInvalidCursor = errors.New("invalid cursor")
)

// InvalidError says which field of a CreateRequest is wrong and why.
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Reason }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Starter starts workflows; client.Client implements it.
type Starter interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
}

// Validator checks a connector call without making it; *invoke.Invoker
// implements it.
type Validator interface {
	Validate(ctx context.Context, call invoke.Call) error
}

// Service creates and reads payment links for the API.
type Service struct {
	db        *DB
	temporal  Starter
	taskQueue string
	validator Validator
	now       func() time.Time
	log       *slog.Logger
}

// NewService returns a Service storing links in db and starting their
// workflows on taskQueue. validator, when not nil, checks the connector's
// parameters up front so a bad request is refused with 4xx instead of ending
// as a failed link.
func NewService(db *DB, temporal Starter, taskQueue string, validator Validator) *Service {
	return &Service{db: db, temporal: temporal, taskQueue: taskQueue, validator: validator, now: time.Now, log: slog.Default()}
}

var (
	currencyPattern = regexp.MustCompile(`^[a-z]{3}$`)
	e164Pattern     = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
)

// maxChatMessageLen leaves room for the URL in WhatsApp's 4,096 characters.
const maxChatMessageLen = 3000

// Stripe's metadata limits, which are the tightest of the payment providers
// Ponte targets.
const (
	maxMetadataKeys     = 49 // 50, less the one Ponte adds
	maxMetadataKeyLen   = 40
	maxMetadataValueLen = 500
	maxProductNameLen   = 250
	maxIdempotencyKey   = 255
)

// normalize validates req and fills defaults.
func normalize(req CreateRequest) (CreateRequest, error) {
	invalid := func(field, format string, args ...any) error {
		return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if req.ConnectionID == "" {
		return req, invalid("connection_id", "is required")
	}
	req.Currency = strings.ToLower(strings.TrimSpace(req.Currency))
	req.ProductName = strings.TrimSpace(req.ProductName)
	switch {
	case req.PriceID != "":
		if req.Amount != 0 || req.Currency != "" || req.ProductName != "" {
			return req, invalid("price_id", "give either price_id or amount, currency and product_name, not both")
		}
	default:
		if req.Amount <= 0 {
			return req, invalid("amount", "must be a positive amount in minor units")
		}
		if !currencyPattern.MatchString(req.Currency) {
			return req, invalid("currency", "must be a three-letter ISO 4217 code")
		}
		if req.ProductName == "" {
			return req, invalid("product_name", "is required with amount")
		}
		if utf8.RuneCountInString(req.ProductName) > maxProductNameLen {
			return req, invalid("product_name", "is longer than %d characters", maxProductNameLen)
		}
	}
	if req.Quantity == 0 {
		req.Quantity = 1
	}
	if req.Quantity < 1 || req.Quantity > 999999 {
		return req, invalid("quantity", "must be between 1 and 999999")
	}
	switch {
	case req.ExpiresIn == 0:
		req.ExpiresIn = DefaultExpiresIn
	case req.ExpiresIn < 0 || req.ExpiresIn > MaxExpiresIn:
		return req, invalid("expires_in", "must be positive and at most 30 days")
	}
	if len(req.Metadata) > maxMetadataKeys {
		return req, invalid("metadata", "has more than %d keys", maxMetadataKeys)
	}
	for k, v := range req.Metadata {
		switch {
		case k == MetadataKey:
			return req, invalid("metadata", "key %q is reserved", MetadataKey)
		case k == "" || utf8.RuneCountInString(k) > maxMetadataKeyLen || strings.ContainsAny(k, "[]"):
			return req, invalid("metadata", "keys must be 1 to %d characters without [ or ]", maxMetadataKeyLen)
		case utf8.RuneCountInString(v) > maxMetadataValueLen:
			return req, invalid("metadata", "value of %q is longer than %d characters", k, maxMetadataValueLen)
		}
	}
	req.To = strings.TrimSpace(req.To)
	switch {
	case req.To == "" && (req.ChannelConnectionID != "" || req.Message != ""):
		return req, invalid("to", "is required with channel_connection_id or message")
	case req.To != "" && !e164Pattern.MatchString(req.To):
		return req, invalid("to", "must be an E.164 phone number, e.g. +393331234567")
	case req.To != "" && req.ChannelConnectionID == "":
		return req, invalid("channel_connection_id", "is required to send the link over WhatsApp")
	case utf8.RuneCountInString(req.Message) > maxChatMessageLen:
		return req, invalid("message", "is longer than %d characters", maxChatMessageLen)
	}
	if len(req.IdempotencyKey) > maxIdempotencyKey {
		return req, invalid("Idempotency-Key", "is longer than %d characters", maxIdempotencyKey)
	}
	return req, nil
}

// Create records a new payment link and starts its workflow, which creates the
// link at the provider. The returned link is in status creating; its URL
// appears (status open) as soon as the workflow's first activity completes.
//
// With an idempotency key, a repeated Create returns the link the first call
// created (and makes sure its workflow runs), or ErrIdempotencyConflict if the
// request differs. Errors: *InvalidError (wrapping ErrInvalid) for a bad
// request, including a connection that is not the tenant's or not active.
func (s *Service) Create(ctx context.Context, tenantID string, req CreateRequest) (Link, error) {
	req, err := normalize(req)
	if err != nil {
		return Link{}, err
	}
	status, _, err := s.db.connectionStatus(ctx, tenantID, req.ConnectionID)
	if errors.Is(err, store.ErrNotFound) {
		return Link{}, &InvalidError{Field: "connection_id", Reason: "no such connection"}
	}
	if err != nil {
		return Link{}, fmt.Errorf("creating payment link: %w", err)
	}
	if status != "active" {
		return Link{}, &InvalidError{Field: "connection_id", Reason: "connection is " + status}
	}
	if req.ChannelConnectionID != "" {
		chStatus, connector, err := s.db.connectionStatus(ctx, tenantID, req.ChannelConnectionID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return Link{}, &InvalidError{Field: "channel_connection_id", Reason: "no such connection"}
		case err != nil:
			return Link{}, fmt.Errorf("creating payment link: %w", err)
		case connector != ChatConnector:
			return Link{}, &InvalidError{Field: "channel_connection_id", Reason: "is not a WhatsApp Cloud API connection"}
		case chStatus != "active":
			return Link{}, &InvalidError{Field: "channel_connection_id", Reason: "connection is " + chStatus}
		}
	}

	now := s.now()
	link := Link{
		ID:           newLinkID(),
		TenantID:     tenantID,
		ConnectionID: req.ConnectionID,
		Status:       StatusCreating,
		Currency:     req.Currency,
		ProductName:  req.ProductName,
		PriceID:      req.PriceID,
		Quantity:     req.Quantity,
		Metadata:     maps.Clone(req.Metadata),
		ExpiresAt:    now.Add(req.ExpiresIn).UTC().Truncate(time.Microsecond),
		To:           req.To, ChannelConnectionID: req.ChannelConnectionID, Message: req.Message,
	}
	if link.Metadata == nil {
		link.Metadata = map[string]string{}
	}
	if req.Amount > 0 {
		amount := req.Amount
		link.Amount = &amount
	}
	link.WorkflowID = WorkflowID(tenantID, link.ID)

	if s.validator != nil {
		params, err := json.Marshal(linkParams(link))
		if err != nil {
			return Link{}, fmt.Errorf("encoding payment link parameters: %w", err)
		}
		err = s.validator.Validate(ctx, invoke.Call{TenantID: tenantID, ConnectionID: req.ConnectionID,
			Action: ActionCreatePaymentLink, Params: params})
		switch sdk.KindOf(err) {
		case sdk.KindInvalid, sdk.KindNotFound:
			return Link{}, &InvalidError{Field: "connection_id", Reason: err.Error()}
		}
		// Anything else (the plugin is restarting) is the workflow's to
		// retry; the request itself is fine.
	}

	stored, created, err := s.db.insert(ctx, link, req.IdempotencyKey)
	if err != nil {
		return Link{}, fmt.Errorf("creating payment link: %w", err)
	}
	if !created && !sameRequest(stored.Link, link) {
		return Link{}, ErrIdempotencyConflict
	}
	if err := s.start(ctx, stored.Link); err != nil {
		if created && req.IdempotencyKey == "" {
			// Nobody can retry this exact link: record why it will never
			// open rather than leave it creating forever.
			_, _ = s.db.Apply(context.WithoutCancel(ctx), Record{
				LinkRef: LinkRef{TenantID: tenantID, LinkID: stored.ID},
				From:    []Status{StatusCreating}, To: StatusFailed, LastError: "starting the workflow failed",
			})
		}
		return Link{}, fmt.Errorf("creating payment link: %w", err)
	}
	return stored.Link, nil
}

// start starts the link's workflow unless it has run already. The reuse policy
// refuses a second run after the first completed, so a replayed Create can
// never create a second provider link.
func (s *Service) start(ctx context.Context, l Link) error {
	_, err := s.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       l.WorkflowID,
		TaskQueue:                                s.taskQueue,
		WorkflowIDReusePolicy:                    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
	}, WorkflowName, WorkflowInput{TenantID: l.TenantID, LinkID: l.ID, ExpiresAt: l.ExpiresAt, Chat: l.To != ""})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("starting workflow %s: %w", l.WorkflowID, err)
	}
	return nil
}

// sameRequest reports whether an existing link was created from the same
// request as l (expiry aside, which depends on when each call ran).
func sameRequest(existing, l Link) bool {
	eqAmount := (existing.Amount == nil) == (l.Amount == nil) && (existing.Amount == nil || *existing.Amount == *l.Amount)
	return existing.ConnectionID == l.ConnectionID && eqAmount && existing.Currency == l.Currency &&
		existing.ProductName == l.ProductName && existing.PriceID == l.PriceID &&
		existing.Quantity == l.Quantity && maps.Equal(existing.Metadata, l.Metadata) &&
		existing.To == l.To && existing.ChannelConnectionID == l.ChannelConnectionID && existing.Message == l.Message
}

// Get returns a tenant's link, or ErrNotFound.
func (s *Service) Get(ctx context.Context, tenantID, id string) (Link, error) {
	return s.db.GetLink(ctx, tenantID, id)
}

// ListQuery selects links to list.
type ListQuery struct {
	// Status, when set, keeps only links in that status.
	Status Status
	// Limit is the page size: default 50, at most 200.
	Limit int
	// Cursor continues after a previous page (its next cursor).
	Cursor string
}

// List returns a page of a tenant's links, newest first, and the cursor of
// the next page ("" on the last page).
func (s *Service) List(ctx context.Context, tenantID string, q ListQuery) ([]Link, string, error) {
	switch {
	case q.Limit <= 0:
		q.Limit = 50
	case q.Limit > 200:
		q.Limit = 200
	}
	return s.db.list(ctx, tenantID, q.Status, q.Limit, q.Cursor)
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newLinkID returns "pl_" and 120 random bits: unguessable, so a link id in
// provider metadata reveals nothing about other links.
func newLinkID() string {
	b := make([]byte, 15)
	_, _ = rand.Read(b)
	return "pl_" + idEncoding.EncodeToString(b)
}
