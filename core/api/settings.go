package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ponte-hub/ponte/core/consent"
	"github.com/ponte-hub/ponte/core/store"
)

// MessagingSettingsBody are a tenant's messaging settings.
type MessagingSettingsBody struct {
	Timezone          string    `json:"timezone" example:"Europe/Rome" doc:"IANA time zone quiet hours are read in."`
	QuietHoursStart   string    `json:"quiet_hours_start" example:"21:00" doc:"Local HH:MM; empty when there are no quiet hours. Marketing sends inside the window are refused or deferred to its end; other purposes are not held."`
	QuietHoursEnd     string    `json:"quiet_hours_end" example:"08:00" doc:"Local HH:MM; a start after the end spans midnight."`
	StopKeywords      []string  `json:"stop_keywords" doc:"A whole inbound message equal to one of these (case, accents, spacing and trailing punctuation ignored) opts the contact out of everything."`
	StartKeywords     []string  `json:"start_keywords" doc:"Opt the contact back in to marketing and utility."`
	StopConfirmation  string    `json:"stop_confirmation" doc:"Sent once in reply to a stop keyword."`
	StartConfirmation string    `json:"start_confirmation" doc:"Sent once in reply to a start keyword."`
	UpdatedAt         time.Time `json:"updated_at"`
}

func settingsBody(st consent.Settings) MessagingSettingsBody {
	return MessagingSettingsBody{Timezone: st.Timezone, QuietHoursStart: st.QuietHoursStart, QuietHoursEnd: st.QuietHoursEnd,
		StopKeywords: nonNilStrings(st.StopKeywords), StartKeywords: nonNilStrings(st.StartKeywords),
		StopConfirmation: st.StopConfirmation, StartConfirmation: st.StartConfirmation, UpdatedAt: st.UpdatedAt}
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type settingsOutput struct {
	Body MessagingSettingsBody
}

type updateSettingsInput struct {
	Body struct {
		Timezone          *string   `json:"timezone,omitempty" maxLength:"100"`
		QuietHoursStart   *string   `json:"quiet_hours_start,omitempty" pattern:"^(([01][0-9]|2[0-3]):[0-5][0-9])?$" doc:"HH:MM, or empty (with an empty end) for no quiet hours. Changed together with the end."`
		QuietHoursEnd     *string   `json:"quiet_hours_end,omitempty" pattern:"^(([01][0-9]|2[0-3]):[0-5][0-9])?$"`
		StopKeywords      *[]string `json:"stop_keywords,omitempty" maxItems:"20"`
		StartKeywords     *[]string `json:"start_keywords,omitempty" maxItems:"20"`
		StopConfirmation  *string   `json:"stop_confirmation,omitempty" maxLength:"1024"`
		StartConfirmation *string   `json:"start_confirmation,omitempty" maxLength:"1024"`
	}
}

func (s *server) registerSettings() {
	if s.deps.Consent == nil {
		return
	}
	s.api.OpenAPI().Tags = append(s.api.OpenAPI().Tags,
		&huma.Tag{Name: tagSettings, Description: "The tenant's messaging settings: time zone, quiet hours, STOP/START keywords and their confirmations."},
	)
	svc := s.deps.Consent

	op := operation("get-messaging-settings", http.MethodGet, "/v1/settings/messaging", "Get messaging settings", tagSettings, store.ScopeRead)
	huma.Register(s.api, op, func(ctx context.Context, _ *struct{}) (*settingsOutput, error) {
		st, err := svc.Settings(ctx, tenant(ctx))
		if err != nil {
			return nil, s.storeError(ctx, "reading messaging settings", "tenant not found", err)
		}
		return &settingsOutput{Body: settingsBody(st)}, nil
	})

	op = operation("update-messaging-settings", http.MethodPatch, "/v1/settings/messaging", "Update messaging settings", tagSettings, store.ScopeWrite)
	op.Description = "Changes the fields given. The time zone must be an IANA name; quiet hours are given as a start and an end together; stop and start keywords may not overlap."
	op.Errors = append(op.Errors, http.StatusUnprocessableEntity)
	huma.Register(s.api, op, func(ctx context.Context, in *updateSettingsInput) (*settingsOutput, error) {
		st, err := svc.UpdateSettings(ctx, tenant(ctx), consent.SettingsUpdate{
			Timezone: in.Body.Timezone, QuietHoursStart: in.Body.QuietHoursStart, QuietHoursEnd: in.Body.QuietHoursEnd,
			StopKeywords: in.Body.StopKeywords, StartKeywords: in.Body.StartKeywords,
			StopConfirmation: in.Body.StopConfirmation, StartConfirmation: in.Body.StartConfirmation,
		})
		if err != nil {
			return nil, s.storeError(ctx, "updating messaging settings", "tenant not found", err)
		}
		return &settingsOutput{Body: settingsBody(st)}, nil
	})
}
