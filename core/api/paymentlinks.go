package api

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/workflows/paymentlink"
)

// createPaymentLinkAction is the action a payments connector offers for
// payment links (the issue names it for Stripe); a connection whose connector
// lacks it cannot carry payment links.
const createPaymentLinkAction = "create_payment_link"

// Stripe's metadata limits, which are the tightest of the payment providers
// Ponte targets: 50 keys, keys up to 40 characters, values up to 500.
const (
	maxMetadataKeys     = 50
	maxMetadataKeyLen   = 40
	maxMetadataValueLen = 500
)

var currencyPattern = regexp.MustCompile(`^[a-z]{3}$`)

type createPaymentLinkInput struct {
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"Makes retries safe: a second request with the same key returns the first request's link instead of creating another."`
	Body           struct {
		ConnectionID string            `json:"connection_id" minLength:"1" maxLength:"100" doc:"A connection of a payments connector (e.g. Stripe)."`
		Amount       int64             `json:"amount,omitempty" minimum:"1" example:"2500" doc:"Amount in the currency's minor unit (cents). With currency and product_name; or give price_id instead."`
		Currency     string            `json:"currency,omitempty" pattern:"^[a-z]{3}$" example:"eur" doc:"ISO 4217 code, lowercase."`
		ProductName  string            `json:"product_name,omitempty" maxLength:"250" example:"Order #1042"`
		PriceID      string            `json:"price_id,omitempty" maxLength:"255" example:"price_1MoBy5LkdIwHu7ixZhnattbh" doc:"A price defined at the provider, instead of amount, currency and product_name."`
		Quantity     int               `json:"quantity,omitempty" minimum:"1" maximum:"10000" default:"1"`
		Metadata     map[string]string `json:"metadata,omitempty" doc:"Up to 50 keys (40 characters) and values (500 characters), stored with the link at the provider."`
		ExpiresIn    int64             `json:"expires_in,omitempty" minimum:"60" maximum:"2592000" example:"86400" doc:"Seconds until the link expires; 24 hours when left out."`
		To           string            `json:"to,omitempty" maxLength:"20" example:"+393331234567" doc:"Send the link to this customer over WhatsApp (E.164), and confirm the payment in the same chat. With channel_connection_id."`
		ChannelID    string            `json:"channel_connection_id,omitempty" maxLength:"100" doc:"The WhatsApp connection (Cloud API number) the link is sent from."`
		Message      string            `json:"message,omitempty" maxLength:"1000" example:"Here is your payment link for order #1042:" doc:"Text sent with the link (the URL is appended). Inside the 24-hour window it goes as free text; outside it the configured utility template is used."`
	}
}

type paymentLinkOutput struct {
	Body paymentlink.Link
}

type paymentLinkIDInput struct {
	ID string `path:"id" maxLength:"100" doc:"The payment link's id."`
}

type listPaymentLinksInput struct {
	Cursor string `query:"cursor" maxLength:"500" doc:"next_cursor of the previous page."`
	Limit  int    `query:"limit" minimum:"1" maximum:"200" default:"50"`
}

type paymentLinkList struct {
	Body struct {
		Data       []paymentlink.Link `json:"data"`
		NextCursor string             `json:"next_cursor" doc:"Cursor of the next page; empty on the last page."`
	}
}

// checkPaymentLink checks what the schema cannot express: the choice between
// a price id and amount+currency+product name, and the metadata limits.
func checkPaymentLink(in *createPaymentLinkInput) []store.FieldProblem {
	b := &in.Body
	var problems []store.FieldProblem
	add := func(field, msg string) { problems = append(problems, store.FieldProblem{Field: field, Message: msg}) }
	adHoc := b.Amount != 0 || b.Currency != "" || b.ProductName != ""
	switch {
	case b.PriceID != "" && adHoc:
		add("price_id", "give either price_id or amount, currency and product_name, not both")
	case b.PriceID == "":
		if b.Amount <= 0 {
			add("amount", "is required (greater than 0) unless price_id is given")
		}
		if !currencyPattern.MatchString(b.Currency) {
			add("currency", "is required unless price_id is given: an ISO 4217 code in lowercase, e.g. eur")
		}
		if b.ProductName == "" {
			add("product_name", "is required unless price_id is given")
		}
	}
	if len(b.Metadata) > maxMetadataKeys {
		add("metadata", "has more than 50 keys")
	}
	for k, v := range b.Metadata {
		switch {
		case k == paymentlink.MetadataKey:
			add("metadata."+k, "is reserved for Ponte")
		case k == "" || utf8.RuneCountInString(k) > maxMetadataKeyLen:
			add("metadata", "keys must be 1 to 40 characters")
		case utf8.RuneCountInString(v) > maxMetadataValueLen:
			add("metadata."+k, "must be at most 500 characters")
		}
	}
	return problems
}

func (s *server) registerPaymentLinks() {
	op := operation("create-payment-link", http.MethodPost, "/v1/payment-links", "Create a payment link", tagPaymentLinks, store.ScopeWrite)
	op.DefaultStatus = http.StatusCreated
	op.Description = "Starts a durable workflow that creates the link at the provider, waits for the payment or the expiry, and records the outcome. The link starts in status creating; its url appears once the provider has made it."
	op.Errors = append(op.Errors, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusServiceUnavailable)
	huma.Register(s.api, op, func(ctx context.Context, in *createPaymentLinkInput) (*paymentLinkOutput, error) {
		if problems := checkPaymentLink(in); problems != nil {
			return nil, invalid("the payment link is invalid", problems...)
		}
		tenantID := tenant(ctx)
		// The connection must be the tenant's own, active, and of a connector
		// that makes payment links; checked here so another tenant's
		// connection id never reaches the workflow.
		conn, err := s.deps.Store.GetConnection(ctx, tenantID, in.Body.ConnectionID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, invalid("unknown connection", store.FieldProblem{Field: "connection_id", Message: "no such connection"})
		}
		if err != nil {
			return nil, s.internal(ctx, "reading connection", err)
		}
		if conn.Status != store.StatusActive {
			return nil, invalid("connection disabled", store.FieldProblem{Field: "connection_id", Message: "the connection is disabled"})
		}
		if m, ok := s.manifest(conn.Connector); !ok || !hasAction(m, createPaymentLinkAction) {
			return nil, invalid("connection cannot make payment links", store.FieldProblem{Field: "connection_id", Message: "the connection's connector does not offer payment links"})
		}
		link, err := s.deps.PaymentLinks.Create(ctx, tenantID, paymentlink.CreateRequest{
			ConnectionID:        conn.ID,
			Amount:              in.Body.Amount,
			Currency:            in.Body.Currency,
			ProductName:         in.Body.ProductName,
			PriceID:             in.Body.PriceID,
			Quantity:            in.Body.Quantity,
			Metadata:            in.Body.Metadata,
			ExpiresIn:           time.Duration(in.Body.ExpiresIn) * time.Second,
			To:                  in.Body.To,
			ChannelConnectionID: in.Body.ChannelID,
			Message:             in.Body.Message,
			IdempotencyKey:      in.IdempotencyKey,
		})
		if err != nil {
			return nil, s.paymentLinkError(ctx, "creating payment link", err)
		}
		return &paymentLinkOutput{Body: link}, nil
	})

	op = operation("get-payment-link", http.MethodGet, "/v1/payment-links/{id}", "Get a payment link", tagPaymentLinks, store.ScopeRead)
	op.Errors = append(op.Errors, http.StatusNotFound)
	huma.Register(s.api, op, func(ctx context.Context, in *paymentLinkIDInput) (*paymentLinkOutput, error) {
		link, err := s.deps.PaymentLinks.Get(ctx, tenant(ctx), in.ID)
		if err != nil {
			return nil, s.paymentLinkError(ctx, "reading payment link", err)
		}
		return &paymentLinkOutput{Body: link}, nil
	})

	op = operation("list-payment-links", http.MethodGet, "/v1/payment-links", "List payment links", tagPaymentLinks, store.ScopeRead)
	op.Errors = append(op.Errors, http.StatusBadRequest)
	huma.Register(s.api, op, func(ctx context.Context, in *listPaymentLinksInput) (*paymentLinkList, error) {
		links, next, err := s.deps.PaymentLinks.List(ctx, tenant(ctx), in.Cursor, in.Limit)
		if err != nil {
			return nil, s.paymentLinkError(ctx, "listing payment links", err)
		}
		out := &paymentLinkList{}
		out.Body.Data = links
		if out.Body.Data == nil {
			out.Body.Data = []paymentlink.Link{}
		}
		out.Body.NextCursor = next
		return out, nil
	})
}

func hasAction(m sdk.Manifest, name string) bool {
	for _, a := range m.Actions {
		if a.Name == name {
			return true
		}
	}
	return false
}

// paymentLinkError maps the payment link service's errors: its own typed
// errors, the store's, then the sdk error kinds a connector reported.
func (s *server) paymentLinkError(ctx context.Context, doing string, err error) error {
	var (
		ie *paymentlink.InvalidError
		se *sdk.Error
	)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return huma.Error404NotFound("payment link not found")
	case errors.As(err, &ie):
		return invalid("the payment link is invalid", store.FieldProblem{Field: ie.Field, Message: ie.Reason})
	case errors.Is(err, paymentlink.ErrIdempotencyConflict):
		return huma.Error409Conflict("this Idempotency-Key was already used for a different payment link request")
	case errors.Is(err, paymentlink.ErrInvalidCursor), errors.Is(err, store.ErrInvalidCursor):
		return huma.Error400BadRequest("invalid cursor", &huma.ErrorDetail{Location: "query.cursor", Message: "not a cursor returned by this API"})
	case isUnavailable(err):
		return unavailable("the payments connector is restarting; retry shortly", 5)
	case errors.As(err, &se):
		switch se.Kind {
		case sdk.KindInvalid:
			return huma.Error422UnprocessableEntity(se.Message)
		case sdk.KindAuth:
			return huma.Error502BadGateway("the payment provider rejected the connection's credentials; check the connection's configuration")
		case sdk.KindRateLimited, sdk.KindRetryable:
			secs := int(se.RetryAfter.Seconds())
			if secs < 1 {
				secs = 5
			}
			return unavailable("the payment provider is unavailable or throttling; retry shortly", secs)
		}
	}
	return s.internal(ctx, doing, err)
}
