package api

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ponte-hub/ponte/core/consent"
	"github.com/ponte-hub/ponte/core/store"
)

// Consent is the consent ledger, exclusion list and messaging settings
// (*consent.Service). Errors: store.ErrNotFound (404), *store.ValidationError
// (422), store.ErrInvalidCursor (400).
type Consent interface {
	Record(ctx context.Context, tenantID string, in consent.NewRecord) ([]consent.Record, error)
	ContactConsent(ctx context.Context, tenantID, contactID string) (consent.ContactConsent, error)
	Export(ctx context.Context, tenantID string, f consent.ExportFilter, fn func(consent.Record) error) error

	AddExclusion(ctx context.Context, tenantID, phone, reason string) (consent.Exclusion, error)
	RemoveExclusion(ctx context.Context, tenantID, phone string) error
	ListExclusions(ctx context.Context, tenantID, cursor string, limit int) ([]consent.Exclusion, string, error)

	Settings(ctx context.Context, tenantID string) (consent.Settings, error)
	UpdateSettings(ctx context.Context, tenantID string, u consent.SettingsUpdate) (consent.Settings, error)
}

var _ Consent = (*consent.Service)(nil)

const (
	tagConsent  = "Consent"
	tagSettings = "Settings"
)

// ConsentRecordBody is an entry of the consent ledger.
type ConsentRecordBody struct {
	ID          int64           `json:"id"`
	ContactID   string          `json:"contact_id"`
	Phone       string          `json:"phone" doc:"The contact's number (E.164)."`
	Purpose     string          `json:"purpose" enum:"marketing,utility"`
	Action      string          `json:"action" enum:"opt_in,opt_out,confirmed"`
	Source      string          `json:"source" example:"checkout" doc:"Where consent was collected; whatsapp_keyword for STOP/START replies."`
	Method      string          `json:"method,omitempty" example:"checkbox"`
	TextShown   string          `json:"text_shown,omitempty" doc:"The exact wording the contact agreed to."`
	TextVersion string          `json:"text_version,omitempty"`
	IP          string          `json:"ip,omitempty"`
	UserAgent   string          `json:"user_agent,omitempty"`
	Evidence    json.RawMessage `json:"evidence" doc:"Further proof, e.g. the message id of a STOP."`
	OccurredAt  time.Time       `json:"occurred_at" doc:"When the contact gave or withdrew consent."`
	RecordedAt  time.Time       `json:"recorded_at" doc:"When Ponte stored it."`
}

func consentRecordBody(r consent.Record) ConsentRecordBody {
	ev := r.Evidence
	if len(ev) == 0 {
		ev = json.RawMessage(`{}`)
	}
	return ConsentRecordBody{ID: r.ID, ContactID: r.ContactID, Phone: r.Phone, Purpose: r.Purpose, Action: r.Action, Source: r.Source,
		Method: r.Method, TextShown: r.TextShown, TextVersion: r.TextVersion, IP: r.IP, UserAgent: r.UserAgent, Evidence: ev,
		OccurredAt: r.OccurredAt, RecordedAt: r.RecordedAt}
}

// ContactConsentBody is a contact's consent: the state per purpose derived
// from the latest record, and the history, newest first.
type ContactConsentBody struct {
	ContactID string              `json:"contact_id"`
	States    map[string]string   `json:"states" doc:"Per purpose (marketing, utility): in, out or none."`
	History   []ConsentRecordBody `json:"history"`
}

type recordConsentInput struct {
	ID   string `path:"id" maxLength:"100" doc:"The contact's id."`
	Body struct {
		Purposes    []string        `json:"purposes" minItems:"1" maxItems:"2" uniqueItems:"true" doc:"marketing and/or utility; one record is written per purpose."`
		Action      string          `json:"action" enum:"opt_in,opt_out,confirmed"`
		Source      string          `json:"source" minLength:"1" maxLength:"100" example:"checkout"`
		Method      string          `json:"method,omitempty" maxLength:"100" example:"checkbox"`
		TextShown   string          `json:"text_shown,omitempty" maxLength:"10000" doc:"The exact wording shown to the contact."`
		TextVersion string          `json:"text_version,omitempty" maxLength:"100"`
		IP          string          `json:"ip,omitempty" maxLength:"100"`
		UserAgent   string          `json:"user_agent,omitempty" maxLength:"1000"`
		Evidence    json.RawMessage `json:"evidence,omitempty" doc:"Any further proof, as a JSON object."`
		OccurredAt  *time.Time      `json:"occurred_at,omitempty" doc:"When it happened; default now. Not in the future."`
	}
}

type consentRecordsOutput struct {
	Body struct {
		Data []ConsentRecordBody `json:"data"`
	}
}

type contactConsentOutput struct {
	Body ContactConsentBody
}

type exportInput struct {
	Format    string `query:"format" enum:"ndjson,csv" default:"ndjson" doc:"ndjson: one JSON record per line; csv: a header row, then one row per record."`
	ContactID string `query:"contact_id" maxLength:"100" doc:"Only this contact's records."`
}

// ExclusionBody is a number the tenant never messages.
type ExclusionBody struct {
	Phone     string    `json:"phone" example:"+393331234567"`
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

type addExclusionInput struct {
	Body struct {
		Phone  string `json:"phone" minLength:"1" maxLength:"20" example:"+393331234567" doc:"E.164."`
		Reason string `json:"reason,omitempty" maxLength:"500"`
	}
}

type exclusionOutput struct {
	Body ExclusionBody
}

type exclusionPhoneInput struct {
	Phone string `path:"phone" maxLength:"20" doc:"The excluded number, E.164 (+ may be sent as %2B)."`
}

type listExclusionsInput struct {
	Cursor string `query:"cursor" maxLength:"500"`
	Limit  int    `query:"limit" minimum:"0" maximum:"200" doc:"Page size (default 50)."`
}

type exclusionList struct {
	Body struct {
		Data       []ExclusionBody `json:"data"`
		NextCursor string          `json:"next_cursor"`
	}
}

// exportColumns are the CSV columns of a consent export.
var exportColumns = []string{"id", "contact_id", "phone", "purpose", "action", "source", "method", "text_shown", "text_version",
	"ip", "user_agent", "evidence", "occurred_at", "recorded_at"}

func (s *server) registerConsent() {
	if s.deps.Consent == nil {
		return
	}
	s.api.OpenAPI().Tags = append(s.api.OpenAPI().Tags,
		&huma.Tag{Name: tagConsent, Description: "The consent ledger (append-only, with evidence), its audit export, and the exclusion list. STOP / START keywords write to it by themselves."},
	)
	svc := s.deps.Consent
	readers := []string{store.RoleAdmin, store.RoleManager, store.RoleOperator, store.RoleReadOnly}

	op := operation("record-consent", http.MethodPost, "/v1/contacts/{id}/consent", "Record consent", tagConsent, store.ScopeWrite)
	op.DefaultStatus = http.StatusCreated
	op.Description = "Appends an opt-in, opt-out or confirmation to the contact's ledger, one record per purpose, with its evidence. An opt-out takes effect at once: a send already past its consent check finishes first, every later one is refused."
	op.Errors = append(op.Errors, http.StatusNotFound, http.StatusUnprocessableEntity)
	huma.Register(s.api, op, func(ctx context.Context, in *recordConsentInput) (*consentRecordsOutput, error) {
		nr := consent.NewRecord{ContactID: in.ID, Purposes: in.Body.Purposes, Action: in.Body.Action, Source: in.Body.Source,
			Method: in.Body.Method, TextShown: in.Body.TextShown, TextVersion: in.Body.TextVersion, IP: in.Body.IP,
			UserAgent: in.Body.UserAgent, Evidence: in.Body.Evidence}
		if in.Body.OccurredAt != nil {
			nr.OccurredAt = *in.Body.OccurredAt
		}
		recs, err := svc.Record(ctx, tenant(ctx), nr)
		if err != nil {
			return nil, s.storeError(ctx, "recording consent", "contact not found", err)
		}
		out := &consentRecordsOutput{}
		out.Body.Data = make([]ConsentRecordBody, len(recs))
		for i, r := range recs {
			out.Body.Data[i] = consentRecordBody(r)
		}
		return out, nil
	})

	op = allowRoles(operation("get-contact-consent", http.MethodGet, "/v1/contacts/{id}/consent", "Get a contact's consent", tagConsent, store.ScopeRead), readers...)
	op.Description = "The current state per purpose (in, out or none, from the latest record) and the full history. Operators see the contacts of their conversations."
	op.Errors = append(op.Errors, http.StatusNotFound)
	huma.Register(s.api, op, func(ctx context.Context, in *contactIDInput) (*contactConsentOutput, error) {
		if principal(ctx).Role == store.RoleOperator {
			if err := s.requireContactAccess(ctx, in.ID, false); err != nil {
				return nil, err
			}
		}
		cc, err := svc.ContactConsent(ctx, tenant(ctx), in.ID)
		if err != nil {
			return nil, s.storeError(ctx, "reading consent", "contact not found", err)
		}
		out := &contactConsentOutput{Body: ContactConsentBody{ContactID: cc.ContactID, States: cc.States, History: make([]ConsentRecordBody, len(cc.History))}}
		for i, r := range cc.History {
			out.Body.History[i] = consentRecordBody(r)
		}
		return out, nil
	})

	op = operation("export-consent", http.MethodGet, "/v1/consent/export", "Export the consent ledger", tagConsent, store.ScopeRead)
	op.Description = "Streams every consent record of the tenant, oldest first, with its evidence: who (contact and phone), when, source, the exact text shown and its version, method, IP and user agent. For audits."
	op.Errors = append(op.Errors, http.StatusNotFound)
	op.Responses = map[string]*huma.Response{"200": {Description: "The records, as NDJSON or CSV.", Content: map[string]*huma.MediaType{
		"application/x-ndjson": {Schema: &huma.Schema{Type: "string"}}, "text/csv": {Schema: &huma.Schema{Type: "string"}},
	}}}
	huma.Register(s.api, op, func(ctx context.Context, in *exportInput) (*huma.StreamResponse, error) {
		tenantID := tenant(ctx)
		if in.ContactID != "" {
			// Check the contact before the stream starts, so a wrong id is
			// a 404 rather than an empty 200.
			if _, err := svc.ContactConsent(ctx, tenantID, in.ContactID); err != nil {
				return nil, s.storeError(ctx, "exporting consent", "contact not found", err)
			}
		}
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			s.exportConsent(hctx, svc, tenantID, in)
		}}, nil
	})

	op = operation("add-exclusion", http.MethodPost, "/v1/exclusions", "Exclude a number", tagConsent, store.ScopeWrite)
	op.DefaultStatus = http.StatusCreated
	op.Description = "Puts a number on the exclusion list: no message of any purpose goes to it, whatever its consent. Adding a number already excluded updates the reason."
	op.Errors = append(op.Errors, http.StatusUnprocessableEntity)
	huma.Register(s.api, op, func(ctx context.Context, in *addExclusionInput) (*exclusionOutput, error) {
		e, err := svc.AddExclusion(ctx, tenant(ctx), in.Body.Phone, in.Body.Reason)
		if err != nil {
			return nil, s.storeError(ctx, "adding exclusion", "tenant not found", err)
		}
		return &exclusionOutput{Body: ExclusionBody(e)}, nil
	})

	op = operation("list-exclusions", http.MethodGet, "/v1/exclusions", "List excluded numbers", tagConsent, store.ScopeRead)
	op.Errors = append(op.Errors, http.StatusBadRequest)
	huma.Register(s.api, op, func(ctx context.Context, in *listExclusionsInput) (*exclusionList, error) {
		list, next, err := svc.ListExclusions(ctx, tenant(ctx), in.Cursor, in.Limit)
		if err != nil {
			return nil, s.storeError(ctx, "listing exclusions", "", err)
		}
		out := &exclusionList{}
		out.Body.Data = make([]ExclusionBody, len(list))
		for i, e := range list {
			out.Body.Data[i] = ExclusionBody(e)
		}
		out.Body.NextCursor = next
		return out, nil
	})

	op = operation("remove-exclusion", http.MethodDelete, "/v1/exclusions/{phone}", "Remove an excluded number", tagConsent, store.ScopeWrite)
	op.DefaultStatus = http.StatusNoContent
	op.Errors = append(op.Errors, http.StatusNotFound)
	huma.Register(s.api, op, func(ctx context.Context, in *exclusionPhoneInput) (*struct{}, error) {
		if err := svc.RemoveExclusion(ctx, tenant(ctx), in.Phone); err != nil {
			return nil, s.storeError(ctx, "removing exclusion", "the number is not excluded", err)
		}
		return nil, nil
	})
}

// exportConsent writes the export. Once the first byte is out the status is
// sent, so a failure midway can only cut the stream short; it is logged, and
// the missing trailing newline (NDJSON) or short CSV tells the reader.
func (s *server) exportConsent(hctx huma.Context, svc Consent, tenantID string, in *exportInput) {
	ctx := hctx.Context()
	w := hctx.BodyWriter()
	flush := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	name := "consent-" + time.Now().UTC().Format("20060102T150405Z")
	var (
		err error
		n   int
	)
	if in.Format == "csv" {
		hctx.SetHeader("Content-Type", "text/csv; charset=utf-8")
		hctx.SetHeader("Content-Disposition", `attachment; filename="`+name+`.csv"`)
		hctx.SetStatus(http.StatusOK)
		cw := csv.NewWriter(w)
		if err = cw.Write(exportColumns); err == nil {
			err = svc.Export(ctx, tenantID, consent.ExportFilter{ContactID: in.ContactID}, func(r consent.Record) error {
				ev := string(r.Evidence)
				if ev == "" {
					ev = "{}"
				}
				n++
				if err := cw.Write([]string{strconv.FormatInt(r.ID, 10), r.ContactID, r.Phone, r.Purpose, r.Action, r.Source, r.Method,
					r.TextShown, r.TextVersion, r.IP, r.UserAgent, ev, r.OccurredAt.UTC().Format(time.RFC3339Nano),
					r.RecordedAt.UTC().Format(time.RFC3339Nano)}); err != nil {
					return err
				}
				if n%500 == 0 {
					cw.Flush()
					flush()
				}
				return cw.Error()
			})
		}
		cw.Flush()
		if err == nil {
			err = cw.Error()
		}
	} else {
		hctx.SetHeader("Content-Type", "application/x-ndjson")
		hctx.SetHeader("Content-Disposition", `attachment; filename="`+name+`.ndjson"`)
		hctx.SetStatus(http.StatusOK)
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		err = svc.Export(ctx, tenantID, consent.ExportFilter{ContactID: in.ContactID}, func(r consent.Record) error {
			n++
			if n%500 == 0 {
				flush()
			}
			return enc.Encode(consentRecordBody(r))
		})
	}
	flush()
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.ErrorContext(ctx, "exporting consent ledger cut short", "error", err, "records_written", n, "request_id", RequestID(ctx))
	}
}
