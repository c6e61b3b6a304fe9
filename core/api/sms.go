package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humagin"
	"github.com/gin-gonic/gin"

	"github.com/ponte-hub/ponte/core/sms"
	"github.com/ponte-hub/ponte/core/store"
)

// SMS is the SMS-compatible endpoint's core; *sms.Service implements it.
// Send returns *sms.Error for everything the client must be told in Twilio's
// terms; Get returns an error wrapping sms.ErrNotFound for an unknown sid.
type SMS interface {
	Send(ctx context.Context, req sms.SendRequest) (sms.Message, error)
	Get(ctx context.Context, tenantID, sid string) (sms.Message, error)
}

var _ SMS = (*sms.Service)(nil)

// The SMS-compatible routes: Twilio's Messages resource, create and fetch.
// The fetch route's last segment is "{Sid}.json"; the router's parameters
// take whole segments, so the handler strips the suffix.
const (
	smsCreatePath = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
	smsFetchPath  = "/2010-04-01/Accounts/{AccountSid}/Messages/{MessageFile}"
)

// registerSMS registers the SMS-compatible endpoint: Twilio's
// POST /2010-04-01/Accounts/{AccountSid}/Messages.json and
// GET .../Messages/{Sid}.json, delivered over WhatsApp (core/sms).
//
// These routes speak Twilio's protocol, not Ponte's /v1 conventions: a form
// body, HTTP Basic auth (username the account, password a tenant API key),
// and errors in Twilio's JSON shape {code, message, more_info, status}
// rather than RFC 9457 problem+json, because the point is that Twilio's
// client libraries and the tools built on them work unchanged, and those
// parse Twilio's shape (twilio-go decodes every error answer into its
// TwilioRestError). They are mounted on the router directly, outside huma,
// and are therefore not in the OpenAPI document, which describes /v1.
//
// The account in the path and in the username may be the tenant id
// ("ten_..."), the tenant id without its underscore, or the tenant's
// Twilio-shaped "AC..." sid (sms.AccountSID); the password is an API key,
// also accepted without its underscores (sms.APIKeyFromPassword), because
// twilio-go allows only letters and digits in credentials.
func (s *server) registerSMS() {
	if s.deps.SMS == nil {
		return
	}
	a := s.api.Adapter()
	a.Handle(&huma.Operation{OperationID: "sms-create-message", Method: http.MethodPost, Path: smsCreatePath},
		func(ctx huma.Context) { s.smsCreate(humagin.Unwrap(ctx)) })
	a.Handle(&huma.Operation{OperationID: "sms-fetch-message", Method: http.MethodGet, Path: smsFetchPath},
		func(ctx huma.Context) { s.smsFetch(humagin.Unwrap(ctx)) })

	op := operation("get-sms-account", http.MethodGet, "/v1/sms/account", "How SMS tools reach Ponte", tagSMS, store.ScopeRead)
	op.Description = "The values to give a tool that speaks Twilio's Messages API so that it sends WhatsApp through Ponte: " +
		"the account sid (for the URL and as the Basic-auth username) and the messages URL. The password is one of the " +
		"tenant's API keys with write scope; Twilio's client libraries accept only letters and digits, so the key may be " +
		"given without its underscores."
	huma.Register(s.api, op, func(ctx context.Context, _ *struct{}) (*smsAccountOutput, error) {
		sid := sms.AccountSID(tenant(ctx))
		out := &smsAccountOutput{}
		out.Body.AccountSID = sid
		out.Body.MessagesURL = s.publicURL + "/2010-04-01/Accounts/" + sid + "/Messages.json"
		out.Body.Username = sid
		return out, nil
	})
}

// tagSMS groups the SMS-compatible endpoint's /v1 operation.
const tagSMS = "SMS"

type smsAccountOutput struct {
	Body struct {
		AccountSID  string `json:"account_sid" doc:"The tenant's Twilio-shaped account sid (AC + 32 hex digits)."`
		MessagesURL string `json:"messages_url" doc:"POST messages here (Twilio's Messages.json), form body To, From, Body."`
		Username    string `json:"username" doc:"The Basic-auth username: the account sid. The password is an API key with write scope."`
	}
}

// smsMessageJSON is Twilio's Message resource. Twilio sends the counts as
// strings and null for what it does not know; the shape is kept exactly so
// strict decoders accept it.
type smsMessageJSON struct {
	Body                string            `json:"body"`
	NumSegments         string            `json:"num_segments"`
	Direction           string            `json:"direction"`
	From                string            `json:"from"`
	To                  string            `json:"to"`
	DateUpdated         string            `json:"date_updated"`
	Price               *string           `json:"price"`
	ErrorMessage        *string           `json:"error_message"`
	URI                 string            `json:"uri"`
	AccountSid          string            `json:"account_sid"`
	NumMedia            string            `json:"num_media"`
	Status              string            `json:"status"`
	MessagingServiceSid *string           `json:"messaging_service_sid"`
	Sid                 string            `json:"sid"`
	DateSent            *string           `json:"date_sent"`
	DateCreated         string            `json:"date_created"`
	ErrorCode           *int              `json:"error_code"`
	PriceUnit           string            `json:"price_unit"`
	APIVersion          string            `json:"api_version"`
	SubresourceURIs     map[string]string `json:"subresource_uris"`
}

// twilioTime is Twilio's date format: RFC 1123 with a numeric zone, in UTC
// ("Sun, 22 Nov 2026 06:01:02 +0000").
func twilioTime(t time.Time) string { return t.UTC().Format(time.RFC1123Z) }

func smsMessageBody(m sms.Message) smsMessageJSON {
	uri := "/" + sms.APIVersion + "/Accounts/" + m.AccountSid + "/Messages/" + m.Sid
	out := smsMessageJSON{
		Body: m.Body,
		// A WhatsApp message is one message however long; Twilio reports
		// 1 for WhatsApp too.
		NumSegments: "1",
		Direction:   "outbound-api",
		From:        m.From, To: m.To,
		DateUpdated: twilioTime(m.DateUpdated),
		DateCreated: twilioTime(m.DateCreated),
		URI:         uri + ".json",
		AccountSid:  m.AccountSid,
		NumMedia:    strconv.Itoa(m.NumMedia),
		Status:      m.Status,
		Sid:         m.Sid,
		// Ponte does not price messages: price stays null, as Twilio's
		// does until it knows; the unit is Twilio's default.
		PriceUnit:       "USD",
		APIVersion:      sms.APIVersion,
		SubresourceURIs: map[string]string{"media": uri + "/Media.json"},
	}
	if m.MessagingServiceSid != "" {
		out.MessagingServiceSid = &m.MessagingServiceSid
	}
	if m.DateSent != nil {
		ds := twilioTime(*m.DateSent)
		out.DateSent = &ds
	}
	if m.ErrorCode != 0 {
		code, msg := m.ErrorCode, m.ErrorMessage
		out.ErrorCode, out.ErrorMessage = &code, &msg
	}
	return out
}

// smsErrorJSON is Twilio's error body.
type smsErrorJSON struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

func writeSMSError(c *gin.Context, e *sms.Error) {
	if e.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(int(e.RetryAfter.Round(time.Second)/time.Second)))
	}
	c.JSON(e.Status, smsErrorJSON{Code: e.Code, Message: e.Message, MoreInfo: e.MoreInfo(), Status: e.Status})
	c.Abort()
}

// smsInternal logs an unexpected error and answers Twilio's 500.
func (s *server) smsInternal(c *gin.Context, doing string, err error) {
	ctx := c.Request.Context()
	s.log.ErrorContext(ctx, doing, slog.Any("error", err), slog.String("request_id", RequestID(ctx)))
	writeSMSError(c, &sms.Error{Code: sms.CodeInternal, Status: http.StatusInternalServerError,
		Message: "An internal error occurred; quote the X-Request-Id header when reporting it."})
}

// smsUnauthorized is Twilio's 401.
func smsUnauthorized(c *gin.Context) {
	c.Header("WWW-Authenticate", `Basic realm="ponte"`)
	writeSMSError(c, &sms.Error{Code: sms.CodeAuthenticate, Status: http.StatusUnauthorized, Message: "Authenticate"})
}

// smsAuthenticate checks the Basic credentials against the path's account
// and returns the request's principal; write asks for the write scope, else
// read. It answers the failure itself and returns false.
//
// Every credential failure (no credentials, a bad or revoked key, a key of
// another tenant than the account named in the username or the path) is the
// same 401: no hint which part was wrong, as on /v1. A valid key without the
// scope, or a user's key whose role cannot send to arbitrary numbers
// (operators are held to their conversations, read-only users never send),
// is a 403 (Twilio's 20403).
func (s *server) smsAuthenticate(c *gin.Context, write bool) (Principal, bool) {
	ctx := c.Request.Context()
	user, pass, ok := c.Request.BasicAuth()
	if !ok || user == "" || pass == "" {
		smsUnauthorized(c)
		return Principal{}, false
	}
	key, err := s.deps.Store.Authenticate(ctx, sms.APIKeyFromPassword(pass))
	if errors.Is(err, store.ErrInvalidAPIKey) {
		s.log.DebugContext(ctx, "SMS endpoint: API key rejected", slog.String("reason", err.Error()), slog.String("request_id", RequestID(ctx)))
		smsUnauthorized(c)
		return Principal{}, false
	}
	if err != nil {
		s.log.ErrorContext(ctx, "SMS endpoint: authenticating API key", slog.Any("error", err), slog.String("request_id", RequestID(ctx)))
		writeSMSError(c, &sms.Error{Code: sms.CodeUnavailable, Status: http.StatusServiceUnavailable, RetryAfter: 5 * time.Second,
			Message: "Cannot check credentials right now; retry shortly."})
		return Principal{}, false
	}
	if !sms.MatchesAccount(key.TenantID, user) || !sms.MatchesAccount(key.TenantID, c.Param("AccountSid")) {
		s.log.DebugContext(ctx, "SMS endpoint: account does not match the API key's tenant", slog.String("request_id", RequestID(ctx)))
		smsUnauthorized(c)
		return Principal{}, false
	}
	if ri := infoFrom(ctx); ri != nil {
		ri.tenantID, ri.keyID = key.TenantID, key.ID
	}
	p := principalFor(key)
	scope, roles := store.ScopeRead, []string{"", store.RoleAdmin, store.RoleManager, store.RoleReadOnly}
	if write {
		scope, roles = store.ScopeWrite, []string{"", store.RoleAdmin, store.RoleManager}
	}
	if !p.Allows(scope) || !slices.Contains(roles, p.Role) {
		what := "read messages"
		if write {
			what = "send messages"
		}
		writeSMSError(c, &sms.Error{Code: sms.CodeForbidden, Status: http.StatusForbidden, Message: "This API key cannot " + what + "."})
		return Principal{}, false
	}
	return p, true
}

// smsUnsupported are Twilio parameters this endpoint cannot honour and
// will not silently ignore: scheduling (the message would go at once) and
// Content API templates (the Body would be sent instead).
var smsUnsupported = []string{"SendAt", "ScheduleType", "ContentSid", "ContentVariables"}

func (s *server) smsCreate(c *gin.Context) {
	p, ok := s.smsAuthenticate(c, true)
	if !ok {
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes)
	if err := c.Request.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeSMSError(c, &sms.Error{Code: sms.CodeInvalidParameter, Status: http.StatusRequestEntityTooLarge, Message: "The request body is too large."})
			return
		}
		writeSMSError(c, &sms.Error{Code: sms.CodeInvalidParameter, Status: http.StatusBadRequest, Message: "The request body is not a valid form."})
		return
	}
	f := c.Request.PostForm
	for _, name := range smsUnsupported {
		if f.Get(name) != "" {
			writeSMSError(c, &sms.Error{Code: sms.CodeInvalidParameter, Status: http.StatusBadRequest,
				Message: "The " + name + " parameter is not supported by Ponte's SMS endpoint."})
			return
		}
	}
	m, err := s.deps.SMS.Send(c.Request.Context(), sms.SendRequest{
		TenantID: p.TenantID, AccountSid: c.Param("AccountSid"),
		To: f.Get("To"), From: f.Get("From"), MessagingServiceSid: f.Get("MessagingServiceSid"),
		Body: f.Get("Body"), MediaURLs: f["MediaUrl"], StatusCallback: f.Get("StatusCallback"),
		IdempotencyToken: c.GetHeader("I-Twilio-Idempotency-Token"),
		// A Ponte extension: the consent purpose (default utility).
		Purpose: f.Get("PontePurpose"),
	})
	var se *sms.Error
	switch {
	case errors.As(err, &se):
		writeSMSError(c, se)
		return
	case err != nil:
		s.smsInternal(c, "SMS endpoint: sending", err)
		return
	}
	c.JSON(http.StatusCreated, smsMessageBody(m))
}

func (s *server) smsFetch(c *gin.Context) {
	p, ok := s.smsAuthenticate(c, false)
	if !ok {
		return
	}
	notFound := func() {
		writeSMSError(c, &sms.Error{Code: sms.CodeNotFound, Status: http.StatusNotFound,
			Message: "The requested resource " + c.Request.URL.Path + " was not found"})
	}
	sid, ok := strings.CutSuffix(c.Param("MessageFile"), ".json")
	if !ok || sid == "" {
		notFound()
		return
	}
	m, err := s.deps.SMS.Get(c.Request.Context(), p.TenantID, sid)
	switch {
	case errors.Is(err, sms.ErrNotFound):
		notFound()
		return
	case err != nil:
		s.smsInternal(c, "SMS endpoint: reading a message", err)
		return
	}
	c.JSON(http.StatusOK, smsMessageBody(m))
}
