package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	qrcode "github.com/skip2/go-qrcode"

	"github.com/ponte-hub/ponte/core/invoke"
	"github.com/ponte-hub/ponte/core/numbers"
	"github.com/ponte-hub/ponte/core/sessions"
	"github.com/ponte-hub/ponte/core/store"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

// Numbers is the store of the numbers a tenant sends from; *numbers.Store
// implements it.
type Numbers interface {
	Create(ctx context.Context, tenantID string, in numbers.NewNumber) (numbers.Number, error)
	Get(ctx context.Context, tenantID, id string) (numbers.Number, error)
	List(ctx context.Context, tenantID string, f numbers.Filter) ([]numbers.Number, string, error)
	Update(ctx context.Context, tenantID, id string, u numbers.Update) (numbers.Number, error)
	Delete(ctx context.Context, tenantID, id string) error
}

// ActionInvoker runs a connector action for a tenant; *invoke.Invoker
// implements it. For session connectors the invoker given to the API must
// route the call to the node that holds the connection's session.
type ActionInvoker interface {
	Invoke(ctx context.Context, call invoke.Call) (json.RawMessage, error)
}

// SessionWatcher hands out the notices of one connection's session as its
// holder (on any node) reports them; *numbers.Watcher implements it.
type SessionWatcher interface {
	Watch(ctx context.Context, tenantID, connectionID string) (<-chan sessions.Notice, func())
}

// SessionRefresher asks the node's session manager to look for sessions to
// hold now rather than at its next round, so a new linked device starts
// pairing at once.
type SessionRefresher interface {
	Refresh()
}

// NumbersDeps is what the numbers operations need. Store nil leaves them
// unregistered; when it is set, Invoker and Watcher are required.
type NumbersDeps struct {
	// Store keeps the numbers (a *numbers.Store).
	Store Numbers
	// Invoker runs the linked-device connector's actions (logout,
	// start_pairing, check_numbers, and download_media for GET
	// /v1/messages/{id}/media when Deps.Messages is set too) on the node
	// holding the session.
	Invoker ActionInvoker
	// Watcher follows sessions for the pairing stream (a *numbers.Watcher).
	Watcher SessionWatcher
	// Sessions, when set, is told when a linked device was created or
	// deleted.
	Sessions SessionRefresher
}

func (d NumbersDeps) check() error {
	if d.Store != nil && (d.Invoker == nil || d.Watcher == nil) {
		return errors.New("api: Numbers.Store needs Numbers.Invoker and Numbers.Watcher")
	}
	return nil
}

// Connector actions the numbers operations call.
const (
	actionLogout       = "logout"
	actionStartPairing = "start_pairing"
)

// Pairing stream events.
const (
	pairingEventQR          = "qr"
	pairingEventPairingCode = "pairing_code"
	pairingEventState       = "state"
	pairingEventConnected   = "connected"
)

const tagNumbers = "Numbers"

// NumberBody is a number as the API shows it.
type NumberBody struct {
	ID           string          `json:"id" example:"num_3kq5x7wz2m4n6p8r0t2v4x6z"`
	Kind         string          `json:"kind" enum:"linked_device,cloud_api"`
	Label        string          `json:"label" example:"Support"`
	ConnectionID string          `json:"connection_id" doc:"The connection the number sends through: its own linkeddevice connection, or the cloudapi connection it labels."`
	Modules      numbers.Modules `json:"modules"`
	Pacing       *numbers.Pacing `json:"pacing,omitempty" doc:"Linked devices only: the pacing in force, defaults applied."`
	Session      *SessionBody    `json:"session,omitempty" doc:"Linked devices: the session as the node holding it last reported it; absent before the first report."`
	CreatedAt    time.Time       `json:"created_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
}

// SessionBody is a linked device's session. The pairing QR code and phone
// code are served by the pairing operations only.
type SessionBody struct {
	State       string     `json:"state" enum:"pairing,connecting,connected,disconnected,logged_out,banned,temporarily_banned"`
	Reason      string     `json:"reason,omitempty" example:"network unreachable"`
	Since       time.Time  `json:"since" doc:"When the session entered its state."`
	RetryAt     *time.Time `json:"retry_at,omitempty" doc:"When a disconnected session tries again."`
	BannedUntil *time.Time `json:"banned_until,omitempty"`
	QRExpiresAt *time.Time `json:"qr_expires_at,omitempty" doc:"While pairing: when the current QR code (GET /v1/numbers/{id}/qr) is replaced."`
	Phone       string     `json:"phone,omitempty" example:"+393331234567"`
	JID         string     `json:"jid,omitempty"`
	PushName    string     `json:"push_name,omitempty"`
	Platform    string     `json:"platform,omitempty"`
	PhoneSeenAt *time.Time `json:"phone_seen_at,omitempty" doc:"When the account's phone was last seen active; WhatsApp logs linked devices out after 14 days without it."`
	ConnectedAt *time.Time `json:"connected_at,omitempty"`
	UpdatedAt   time.Time  `json:"updated_at"`
}

func numberBody(n numbers.Number) NumberBody {
	b := NumberBody{ID: n.ID, Kind: n.Kind, Label: n.Label, ConnectionID: n.ConnectionID, Modules: n.Modules,
		CreatedAt: n.CreatedAt, UpdatedAt: n.UpdatedAt}
	if n.Kind == numbers.KindLinkedDevice {
		p := n.Pacing
		b.Pacing = &p
	}
	if st := n.Session; st != nil {
		b.Session = &SessionBody{State: st.State, Reason: st.Reason, Since: st.Since, RetryAt: st.RetryAt,
			BannedUntil: st.BannedUntil, Phone: st.Phone, JID: st.JID, PushName: st.PushName, Platform: st.Platform,
			PhoneSeenAt: st.PhoneSeenAt, ConnectedAt: st.ConnectedAt, UpdatedAt: st.UpdatedAt}
		if currentQR(st, time.Now()) != "" {
			b.Session.QRExpiresAt = st.QRExpiresAt
		}
	}
	return b
}

// currentQR is the session's QR code while it can still be scanned.
func currentQR(st *sessions.State, now time.Time) string {
	if st == nil || st.State != string(sdk.SessionPairing) || st.QRCode == "" {
		return ""
	}
	if st.QRExpiresAt != nil && !st.QRExpiresAt.After(now) {
		return ""
	}
	return st.QRCode
}

type createNumberInput struct {
	Body struct {
		Kind         string                  `json:"kind" enum:"linked_device,cloud_api" doc:"linked_device pairs a WhatsApp account by QR code; cloud_api labels an existing cloudapi connection."`
		Label        string                  `json:"label" minLength:"1" maxLength:"200" example:"Support"`
		DeviceName   string                  `json:"device_name,omitempty" maxLength:"100" doc:"Linked devices: the name the phone shows in its list of linked devices."`
		ConnectionID string                  `json:"connection_id,omitempty" maxLength:"100" doc:"Cloud API numbers: the id of your cloudapi connection."`
		Modules      *numbers.Modules        `json:"modules,omitempty" doc:"What the number is used for; both on when left out."`
		Pacing       *numbers.PacingSettings `json:"pacing,omitempty" doc:"Linked devices: pacing fields to set; the others keep their defaults."`
	}
}

type numberIDInput struct {
	ID string `path:"id" maxLength:"100" doc:"The number's id."`
}

type listNumbersInput struct {
	Kind   string `query:"kind" enum:"linked_device,cloud_api" doc:"Only numbers of this kind."`
	Cursor string `query:"cursor" maxLength:"500" doc:"next_cursor of the previous page."`
	Limit  int    `query:"limit" minimum:"1" maximum:"200" default:"50"`
}

type updateNumberInput struct {
	ID   string `path:"id" maxLength:"100" doc:"The number's id."`
	Body struct {
		Label   *string                `json:"label,omitempty" minLength:"1" maxLength:"200"`
		Modules *numbers.ModulesUpdate `json:"modules,omitempty" doc:"Modules to switch; those left out keep their value."`
		Pacing  map[string]any         `json:"pacing,omitempty" doc:"Linked devices: a JSON merge patch over the pacing settings (messages_per_minute 1..60, new_contacts_per_day 0..1000, min_gap_seconds <= max_gap_seconds <= 300, typing, typing_max_seconds 1..60). Fields given replace, null resets a field to its default, fields left out keep their value."`
	}
}

type qrPNGInput struct {
	ID   string `path:"id" maxLength:"100" doc:"The number's id."`
	Size int    `query:"size" minimum:"128" maximum:"1024" default:"256" doc:"Width and height of the image in pixels."`
}

type startPairingInput struct {
	ID   string `path:"id" maxLength:"100" doc:"The number's id."`
	Body struct {
		Phone string `json:"phone,omitempty" pattern:"^\\+[1-9][0-9]{6,14}$" example:"+393331234567" doc:"Pair by phone code instead of QR code: the account's number in E.164. The code returned is typed on that phone (Linked devices > Link a device > Link with phone number instead)."`
	}
}

type numberOutput struct {
	Body NumberBody
}

type numberList struct {
	Body struct {
		Data       []NumberBody `json:"data"`
		NextCursor string       `json:"next_cursor" doc:"Cursor of the next page; empty on the last page."`
	}
}

type qrPNGOutput struct {
	ContentType  string `header:"Content-Type"`
	CacheControl string `header:"Cache-Control"`
	Body         []byte
}

type pairingOutput struct {
	Body struct {
		PairingCode string `json:"pairing_code,omitempty" example:"ABCD-EFGH" doc:"When pairing by phone: the code to type on the phone."`
	}
}

// Data of the pairing stream's events.
type (
	// PairingQREvent is the data of a "qr" event.
	PairingQREvent struct {
		Code      string     `json:"code"`
		ExpiresAt *time.Time `json:"expires_at,omitempty"`
	}
	// PairingCodeEvent is the data of a "pairing_code" event.
	PairingCodeEvent struct {
		Code string `json:"code"`
	}
	// PairingStateEvent is the data of a "state" event.
	PairingStateEvent struct {
		State  string `json:"state"`
		Reason string `json:"reason,omitempty"`
	}
	// PairingConnectedEvent is the data of the final "connected" event.
	PairingConnectedEvent struct {
		Phone    string `json:"phone,omitempty"`
		PushName string `json:"push_name,omitempty"`
	}
)

func (s *server) registerNumbers() {
	s.registerMedia()
	nd := s.deps.Numbers
	if nd.Store == nil {
		return
	}

	op := operation("create-number", http.MethodPost, "/v1/numbers", "Add a number", tagNumbers, store.ScopeWrite)
	op.DefaultStatus = http.StatusCreated
	op.Description = "A linked device gets a connection of its own and starts pairing: follow GET /v1/numbers/{id}/qr for the QR code to scan " +
		"(WhatsApp > Linked devices > Link a device), or pair by phone code with POST /v1/numbers/{id}/pairing. " +
		"A Cloud API number labels one of your cloudapi connections (409 if it already is a number)."
	op.Errors = append(op.Errors, http.StatusConflict, http.StatusUnprocessableEntity)
	huma.Register(s.api, op, func(ctx context.Context, in *createNumberInput) (*numberOutput, error) {
		b := in.Body
		nn := numbers.NewNumber{Kind: b.Kind, Label: b.Label, DeviceName: b.DeviceName, ConnectionID: b.ConnectionID, Modules: b.Modules}
		if b.Pacing != nil {
			nn.Pacing = *b.Pacing
		}
		if b.Kind == numbers.KindLinkedDevice {
			m, ok := s.manifest(numbers.ConnectorLinkedDevice)
			if !ok {
				return nil, huma.Error409Conflict("the linked-device connector is not installed on this server")
			}
			nn.Fields = m.Config
		}
		n, err := nd.Store.Create(ctx, tenant(ctx), nn)
		if errors.Is(err, numbers.ErrExists) {
			return nil, huma.Error409Conflict("this connection already is a number")
		}
		if err != nil {
			return nil, s.storeError(ctx, "creating number", "tenant not found", err)
		}
		if n.Kind == numbers.KindLinkedDevice {
			s.refreshSessions()
		}
		return &numberOutput{Body: numberBody(n)}, nil
	})

	op = operation("list-numbers", http.MethodGet, "/v1/numbers", "List numbers", tagNumbers, store.ScopeRead)
	op.Errors = append(op.Errors, http.StatusBadRequest)
	huma.Register(s.api, op, func(ctx context.Context, in *listNumbersInput) (*numberList, error) {
		list, next, err := nd.Store.List(ctx, tenant(ctx), numbers.Filter{Kind: in.Kind, Cursor: in.Cursor, Limit: in.Limit})
		if err != nil {
			return nil, s.storeError(ctx, "listing numbers", "", err)
		}
		out := &numberList{}
		out.Body.Data = make([]NumberBody, len(list))
		for i, n := range list {
			out.Body.Data[i] = numberBody(n)
		}
		out.Body.NextCursor = next
		return out, nil
	})

	op = operation("get-number", http.MethodGet, "/v1/numbers/{id}", "Get a number", tagNumbers, store.ScopeRead)
	op.Description = "With its session: state (pairing, connecting, connected, disconnected, logged_out, banned, temporarily_banned), reason, since when, the next retry, the linked account and when its phone was last seen."
	op.Errors = append(op.Errors, http.StatusNotFound)
	huma.Register(s.api, op, func(ctx context.Context, in *numberIDInput) (*numberOutput, error) {
		n, err := nd.Store.Get(ctx, tenant(ctx), in.ID)
		if err != nil {
			return nil, s.storeError(ctx, "reading number", "number not found", err)
		}
		return &numberOutput{Body: numberBody(n)}, nil
	})

	op = operation("update-number", http.MethodPatch, "/v1/numbers/{id}", "Update a number", tagNumbers, store.ScopeWrite)
	op.Description = "Renames a number, switches its modules or changes a linked device's pacing."
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusUnprocessableEntity)
	huma.Register(s.api, op, func(ctx context.Context, in *updateNumberInput) (*numberOutput, error) {
		u := numbers.Update{Label: in.Body.Label, Modules: in.Body.Modules}
		if in.Body.Pacing != nil {
			raw, err := json.Marshal(in.Body.Pacing)
			if err != nil {
				return nil, s.internal(ctx, "encoding pacing", err)
			}
			u.Pacing = raw
		}
		n, err := nd.Store.Update(ctx, tenant(ctx), in.ID, u)
		if err != nil {
			return nil, s.storeError(ctx, "updating number", "number not found", err)
		}
		return &numberOutput{Body: numberBody(n)}, nil
	})

	op = operation("delete-number", http.MethodDelete, "/v1/numbers/{id}", "Delete a number", tagNumbers, store.ScopeWrite)
	op.DefaultStatus = http.StatusNoContent
	op.Description = "A linked device is logged out of WhatsApp first (it disappears from the phone's linked devices) and deleted with its connection and session. " +
		"A Cloud API number loses its label; its connection stays. Automations and flows bound to the number become bound to all numbers."
	op.Errors = append(op.Errors, http.StatusNotFound)
	huma.Register(s.api, op, func(ctx context.Context, in *numberIDInput) (*struct{}, error) {
		tenantID := tenant(ctx)
		n, err := nd.Store.Get(ctx, tenantID, in.ID)
		if err != nil {
			return nil, s.storeError(ctx, "reading number", "number not found", err)
		}
		if n.Kind == numbers.KindLinkedDevice {
			s.logoutDeletedDevice(ctx, tenantID, n.ConnectionID)
		}
		if err := nd.Store.Delete(ctx, tenantID, in.ID); err != nil {
			return nil, s.storeError(ctx, "deleting number", "number not found", err)
		}
		if n.Kind == numbers.KindLinkedDevice {
			s.refreshSessions()
		}
		return nil, nil
	})

	// The QR code links a WhatsApp account to the tenant, so showing it is
	// a change, not a read: read-only users and read keys do not get it.
	op = operation("stream-number-pairing", http.MethodGet, "/v1/numbers/{id}/qr", "Follow a linked device's pairing", tagNumbers, store.ScopeWrite)
	op.Description = "Server-sent events (`text/event-stream`) while a linked device pairs: `qr` {code, expires_at} with the current QR code at once and at every new one " +
		"(render `code` as a QR code, or use GET /v1/numbers/{id}/qr.png), `pairing_code` {code} when pairing by phone, `state` {state, reason} at every state change. " +
		"The stream ends after `connected` {phone, push_name}, or after a `state` event saying pairing ended (logged_out, e.g. \"pairing timed out\"; restart with POST /v1/numbers/{id}/pairing). " +
		"A comment line is sent every 15 seconds when idle. 409 when the number is not a linked device or is already connected."
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusConflict)
	op.Responses = map[string]*huma.Response{
		"200": {
			Description: "Server-sent events until the device is connected or pairing ends.",
			Content: map[string]*huma.MediaType{
				"text/event-stream": {Schema: &huma.Schema{Type: "string", Description: "event: qr|pairing_code|state|connected\\ndata: <JSON>\\n\\n"}},
			},
		},
	}
	huma.Register(s.api, op, func(ctx context.Context, in *numberIDInput) (*huma.StreamResponse, error) {
		tenantID := tenant(ctx)
		n, err := s.pairableNumber(ctx, tenantID, in.ID)
		if err != nil {
			return nil, err
		}
		return &huma.StreamResponse{Body: func(hctx huma.Context) { s.streamPairing(hctx, tenantID, n) }}, nil
	})

	op = operation("get-number-qr-png", http.MethodGet, "/v1/numbers/{id}/qr.png", "Get a linked device's QR code as an image", tagNumbers, store.ScopeWrite)
	op.Description = "The current pairing QR code as a PNG, to scan with WhatsApp > Linked devices > Link a device. 404 when there is no current code (not pairing, or the code expired: fetch again, or restart pairing)."
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusConflict)
	op.Responses = map[string]*huma.Response{
		"200": {Description: "The QR code.", Content: map[string]*huma.MediaType{"image/png": {Schema: &huma.Schema{Type: "string", Format: "binary"}}}},
	}
	huma.Register(s.api, op, func(ctx context.Context, in *qrPNGInput) (*qrPNGOutput, error) {
		n, err := nd.Store.Get(ctx, tenant(ctx), in.ID)
		if err != nil {
			return nil, s.storeError(ctx, "reading number", "number not found", err)
		}
		if n.Kind != numbers.KindLinkedDevice {
			return nil, huma.Error409Conflict("only linked devices pair by QR code")
		}
		code := currentQR(n.Session, time.Now())
		if code == "" {
			return nil, huma.Error404NotFound("no current QR code: the number is not pairing or the code expired")
		}
		qr, err := qrcode.New(code, qrcode.Medium)
		if err != nil {
			return nil, s.internal(ctx, "encoding the QR code", err)
		}
		img, err := qr.PNG(in.Size)
		if err != nil {
			return nil, s.internal(ctx, "rendering the QR code", err)
		}
		// The code links an account: no cache may keep it.
		return &qrPNGOutput{ContentType: "image/png", CacheControl: "no-store", Body: img}, nil
	})

	op = operation("start-number-pairing", http.MethodPost, "/v1/numbers/{id}/pairing", "Restart pairing, or pair by phone code", tagNumbers, store.ScopeWrite)
	op.Description = "Without a phone: starts a new round of QR codes (after pairing timed out or the device was logged out); follow GET /v1/numbers/{id}/qr. " +
		"With a phone number: asks WhatsApp for a pairing code to type on that phone (Linked devices > Link a device > Link with phone number instead) and returns it. " +
		"409 when the number is not a linked device or is already connected; 503 with Retry-After while the session is starting or moving between servers."
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusBadGateway, http.StatusServiceUnavailable)
	huma.Register(s.api, op, func(ctx context.Context, in *startPairingInput) (*pairingOutput, error) {
		tenantID := tenant(ctx)
		n, err := s.pairableNumber(ctx, tenantID, in.ID)
		if err != nil {
			return nil, err
		}
		params := map[string]any{}
		if in.Body.Phone != "" {
			params["phone"] = in.Body.Phone
		}
		raw, err := json.Marshal(params)
		if err != nil {
			return nil, s.internal(ctx, "encoding pairing parameters", err)
		}
		res, err := nd.Invoker.Invoke(ctx, invoke.Call{TenantID: tenantID, ConnectionID: n.ConnectionID,
			Action: actionStartPairing, Params: raw, IdempotencyKey: "number-pairing-" + RequestID(ctx)})
		if err != nil {
			return nil, s.sessionActionError(ctx, "starting pairing", err)
		}
		out := &pairingOutput{}
		if len(res) > 0 && string(res) != "null" {
			if err := json.Unmarshal(res, &out.Body); err != nil {
				return nil, s.internal(ctx, "decoding the connector's pairing result", err)
			}
		}
		if in.Body.Phone != "" && out.Body.PairingCode == "" {
			return nil, huma.Error502BadGateway("the linked-device connector returned no pairing code")
		}
		return out, nil
	})

	s.registerCheckNumbers()
}

// e164 is what POST /v1/numbers/{id}/check takes. huma puts a pattern tag of
// a []string on its items schema without compiling it, so the handler checks
// each phone itself.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// maxCheckPhones is the most phones one check takes
// (connectors/linkeddevice MaxCheckNumbers).
const maxCheckPhones = 50

type checkNumbersInput struct {
	ID   string `path:"id" maxLength:"100" doc:"The number's id."`
	Body struct {
		Phones []string `json:"phones" minItems:"1" maxItems:"50" pattern:"^\\+[1-9][0-9]{6,14}$" example:"[\"+393331234567\"]" doc:"Phone numbers in E.164, 1 to 50."`
	}
}

// NumberCheckBody is one phone of a check.
type NumberCheckBody struct {
	Phone      string `json:"phone" example:"+393331234567"`
	OnWhatsApp bool   `json:"on_whatsapp"`
	JID        string `json:"jid,omitempty" example:"393331234567@s.whatsapp.net" doc:"The phone's WhatsApp id, when it is on WhatsApp."`
}

type checkNumbersOutput struct {
	Body struct {
		Results []NumberCheckBody `json:"results" doc:"One per phone asked, in the order asked."`
	}
}

func (s *server) registerCheckNumbers() {
	// Write scope: a check spends the number's small lookup budget, and
	// WhatsApp bans accounts that look up many numbers.
	op := operation("check-number-contacts", http.MethodPost, "/v1/numbers/{id}/check", "Check which phones are on WhatsApp", tagNumbers, store.ScopeWrite)
	op.Description = "Asks WhatsApp, through a connected linked-device number, which of 1 to 50 phones have a WhatsApp account. " +
		"Checks are limited per number (3 in a row, then one every 20 seconds; WhatsApp bans accounts that look up many numbers): " +
		"429 with Retry-After past that. 409 for a Cloud API number; 503 with Retry-After while the number's session is not connected or is moving between servers."
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusTooManyRequests,
		http.StatusBadGateway, http.StatusServiceUnavailable)
	huma.Register(s.api, op, func(ctx context.Context, in *checkNumbersInput) (*checkNumbersOutput, error) {
		tenantID := tenant(ctx)
		var problems []store.FieldProblem
		for i, ph := range in.Body.Phones {
			if !e164.MatchString(ph) {
				problems = append(problems, store.FieldProblem{Field: fmt.Sprintf("phones[%d]", i), Message: "must be a phone number in E.164, e.g. +393331234567"})
			}
		}
		if len(in.Body.Phones) > maxCheckPhones {
			problems = append(problems, store.FieldProblem{Field: "phones", Message: fmt.Sprintf("at most %d phones", maxCheckPhones)})
		}
		if len(problems) > 0 {
			return nil, invalid("the phones are invalid", problems...)
		}
		n, err := s.deps.Numbers.Store.Get(ctx, tenantID, in.ID)
		if err != nil {
			return nil, s.storeError(ctx, "reading number", "number not found", err)
		}
		if n.Kind != numbers.KindLinkedDevice {
			return nil, huma.Error409Conflict("only linked-device numbers can check phones; this is a " + n.Kind + " number")
		}
		params, err := json.Marshal(map[string][]string{"phones": in.Body.Phones})
		if err != nil {
			return nil, s.internal(ctx, "encoding check parameters", err)
		}
		raw, err := s.deps.Numbers.Invoker.Invoke(ctx, invoke.Call{TenantID: tenantID, ConnectionID: n.ConnectionID,
			Action: actionCheckNumbers, Params: params})
		if err != nil {
			return nil, s.checkNumbersError(ctx, err)
		}
		out := &checkNumbersOutput{}
		if err := json.Unmarshal(raw, &out.Body); err != nil {
			s.log.WarnContext(ctx, "check numbers: undecodable connector result", slog.String("number", n.ID), slog.Any("error", err))
			return nil, huma.Error502BadGateway("the linked-device connector returned an unreadable result")
		}
		if out.Body.Results == nil {
			out.Body.Results = []NumberCheckBody{}
		}
		return out, nil
	})
}

// checkNumbersError maps check_numbers' failures: the connector's rate
// limit is the caller's (429), a session not ready is 503, the rest as the
// other linked-device actions.
func (s *server) checkNumbersError(ctx context.Context, err error) error {
	var se *sdk.Error
	if errors.As(err, &se) && !isUnavailable(err) {
		if busy := sessionBusy(se); busy != nil {
			return busy
		}
		if se.Kind == sdk.KindRateLimited {
			return huma.ErrorWithHeaders(huma.NewError(http.StatusTooManyRequests, se.Message),
				http.Header{"Retry-After": []string{strconv.Itoa(retryAfterSeconds(se.RetryAfter))}})
		}
	}
	return s.sessionActionError(ctx, "checking numbers", err)
}

func (s *server) refreshSessions() {
	if r := s.deps.Numbers.Sessions; r != nil {
		r.Refresh()
	}
}

// pairableNumber returns the tenant's number if it can pair: a linked
// device that is not connected.
func (s *server) pairableNumber(ctx context.Context, tenantID, id string) (numbers.Number, error) {
	n, err := s.deps.Numbers.Store.Get(ctx, tenantID, id)
	if err != nil {
		return numbers.Number{}, s.storeError(ctx, "reading number", "number not found", err)
	}
	if n.Kind != numbers.KindLinkedDevice {
		return numbers.Number{}, huma.Error409Conflict("only linked devices pair; this is a " + n.Kind + " number")
	}
	if n.Session != nil && n.Session.State == string(sdk.SessionConnected) {
		return numbers.Number{}, huma.Error409Conflict("the number is already connected")
	}
	return n, nil
}

// sessionActionError maps the errors of a linked-device action like the
// other action calls: the connector's typed errors to 404/422/502/503.
func (s *server) sessionActionError(ctx context.Context, doing string, err error) error {
	var se *sdk.Error
	switch {
	case isUnavailable(err):
		return unavailable("the linked-device connector is restarting; retry shortly", 5)
	case errors.As(err, &se):
		switch se.Kind {
		case sdk.KindNotFound:
			return huma.Error404NotFound("number not found")
		case sdk.KindInvalid:
			if se.Code == sdk.CodeSessionNotHeld {
				return unavailable("the number's session is starting or moving between servers; retry shortly", 5)
			}
			return huma.Error422UnprocessableEntity(se.Message)
		case sdk.KindAuth:
			return huma.Error502BadGateway("WhatsApp refused the device: " + se.Message)
		case sdk.KindRateLimited, sdk.KindRetryable:
			secs := int(se.RetryAfter.Seconds())
			if secs < 1 {
				secs = 5
			}
			return unavailable("the session is not ready or WhatsApp is throttling; retry shortly: "+se.Message, secs)
		case sdk.KindPermanent:
			return huma.Error502BadGateway("WhatsApp refused the request: " + se.Message)
		}
	}
	return s.internal(ctx, doing, err)
}

// pairingProgress is what a pairing stream has told its client, so each
// change is sent once.
type pairingProgress struct {
	state, reason string
	since         time.Time
	qr            string
	pairingCode   string
}

// streamPairing follows one linked device's session until it is connected
// or pairing ends. The state is read from session_states at start and again
// at every notice of its connection, whichever node holds the session.
func (s *server) streamPairing(hctx huma.Context, tenantID string, n numbers.Number) {
	ctx := hctx.Context()
	// Subscribe before reading the state: a change between the two is
	// then seen as a notice rather than missed.
	notices, stop := s.deps.Numbers.Watcher.Watch(ctx, tenantID, n.ConnectionID)
	defer stop()

	w, ok := s.openEventStream(hctx)
	if !ok {
		return
	}
	var sent pairingProgress
	first := true
	// step sends what changed since the last step and reports whether the
	// stream is over.
	step := func() (done bool) {
		cur, err := s.deps.Numbers.Store.Get(ctx, tenantID, n.ID)
		if errors.Is(err, store.ErrNotFound) {
			return true // the number was deleted
		}
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "pairing stream: reading the number", slog.String("number", n.ID), slog.Any("error", err))
			}
			return ctx.Err() != nil
		}
		st := cur.Session
		if st == nil {
			return false // the session has not reported yet
		}
		initial := first
		first = false
		changed := st.State != sent.state || st.Reason != sent.reason || !st.Since.Equal(sent.since)
		if changed {
			sent.state, sent.reason, sent.since = st.State, st.Reason, st.Since
			if !w.event(pairingEventState, PairingStateEvent{State: st.State, Reason: st.Reason}) {
				return true
			}
		}
		if code := currentQR(st, time.Now()); code != "" && code != sent.qr {
			sent.qr = code
			if !w.event(pairingEventQR, PairingQREvent{Code: code, ExpiresAt: st.QRExpiresAt}) {
				return true
			}
		}
		if st.State == string(sdk.SessionPairing) && st.PairingCode != "" && st.PairingCode != sent.pairingCode {
			sent.pairingCode = st.PairingCode
			if !w.event(pairingEventPairingCode, PairingCodeEvent{Code: st.PairingCode}) {
				return true
			}
		}
		switch sdk.SessionState(st.State) {
		case sdk.SessionConnected:
			w.event(pairingEventConnected, PairingConnectedEvent{Phone: st.Phone, PushName: st.PushName})
			return true
		case sdk.SessionLoggedOut, sdk.SessionBanned, sdk.SessionTemporarilyBanned:
			// Pairing ended while the client watched. A session found
			// already ended when the stream opens is reported and followed
			// on: the client may be about to restart pairing.
			return changed && !initial
		}
		return false
	}
	if step() {
		return
	}
	pumpEvents(ctx, s, w, notices, func(notice sessions.Notice) bool {
		return notice.Kind != sessions.NoticeState || !step()
	})
}

// logoutDeletedDevice logs a linked device that is about to be deleted out
// of WhatsApp, so it disappears from the phone's linked devices; it runs
// while the device keys still exist. A session that cannot be reached (never
// paired, node down, plugin gone) must not keep the user from deleting the
// number, so a failure is logged and the deletion goes ahead. Both DELETE
// /v1/numbers/{id} and DELETE /v1/connections/{id} call it.
func (s *server) logoutDeletedDevice(ctx context.Context, tenantID, connectionID string) {
	inv := s.deps.Numbers.Invoker
	if inv == nil {
		return
	}
	if _, err := inv.Invoke(ctx, invoke.Call{TenantID: tenantID, ConnectionID: connectionID,
		Action: actionLogout, IdempotencyKey: "logout-deleted-" + connectionID}); err != nil {
		s.log.WarnContext(ctx, "logging a deleted linked device out failed; deleting it anyway",
			slog.String("connection", connectionID), slog.Any("error", err))
	}
}
