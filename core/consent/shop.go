package consent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

// shopConsentPayload is the part of a customer.* or checkout.* payload (see
// plugins/sdk/commerce) that carries the shop's record of phone marketing
// consent.
type shopConsentPayload struct {
	ID               string                     `json:"id"`
	Phone            string                     `json:"phone"`
	MarketingConsent *commerce.MarketingConsent `json:"marketing_consent"`
}

// ShopRoute returns the router that brings shops' marketing consent into the
// ledger: a customer.created / customer.updated (or checkout) event whose
// payload carries a subscribed or unsubscribed phone marketing consent gets
// an in-process delivery that records it for the contact of that phone, as
// evidence with the shop's connector as its source ("shopify"), the shop's
// opt-in level as the method and the shop's consent timestamp as when it
// happened. States that are not a decision (not_subscribed, pending,
// redacted) record nothing.
func ShopRoute(s *Service) dispatch.Router {
	return dispatch.RouterFunc(s.shopRoute)
}

func (s *Service) shopRoute(_ context.Context, ev dispatch.Event) ([]dispatch.Delivery, error) {
	switch ev.Type {
	case commerce.EventCustomerCreated, commerce.EventCustomerUpdated,
		commerce.EventCheckoutCreated, commerce.EventCheckoutUpdated:
	default:
		return nil, nil
	}
	var p shopConsentPayload
	if err := json.Unmarshal(ev.Payload, &p); err != nil {
		return nil, dispatch.Permanent(fmt.Errorf("consent: decoding %s payload of event %d: %w", ev.Type, ev.ID, err))
	}
	mc := p.MarketingConsent
	if mc == nil || p.Phone == "" {
		return nil, nil
	}
	var action string
	switch mc.State {
	case commerce.ConsentSubscribed:
		action = ActionOptIn
	case commerce.ConsentUnsubscribed:
		action = ActionOptOut
	default:
		return nil, nil
	}
	if !ValidPhone(p.Phone) {
		return nil, dispatch.Permanent(fmt.Errorf("consent: %s event %d carries an invalid phone", ev.Type, ev.ID))
	}
	if s.contacts == nil {
		return nil, errors.New("consent: shop consent needs Options.Contacts")
	}
	return []dispatch.Delivery{{Apply: func(ctx context.Context) error {
		contactID, err := s.contacts.Resolve(ctx, ev.TenantID, p.Phone)
		if err != nil {
			return fmt.Errorf("consent: resolving the contact of event %d: %w", ev.ID, err)
		}
		occurred := ev.OccurredAt
		if mc.UpdatedAt != nil && !mc.UpdatedAt.IsZero() {
			occurred = *mc.UpdatedAt
		}
		evidence, err := json.Marshal(map[string]any{
			"event_id": ev.ID, "connection_id": ev.ConnectionID, "customer_id": p.ID,
			"state": mc.State, "opt_in_level": mc.OptInLevel, "collected_from": mc.Source,
		})
		if err != nil {
			return fmt.Errorf("consent: encoding evidence: %w", err)
		}
		method := mc.OptInLevel
		if method == "confirmed_opt_in" {
			method = "double_opt_in"
		}
		_, err = s.RecordIfNewer(ctx, ev.TenantID, NewRecord{
			ContactID: contactID, Purposes: []string{PurposeMarketing}, Action: action,
			Source: ev.Connector, Method: method, Evidence: evidence, OccurredAt: occurred,
		})
		return err
	}}}, nil
}

// RecordIfNewer appends a consent record that comes from another system's
// state (a shop's customer record) rather than from an act of the contact
// seen here: for each purpose it is written only when it is newer than the
// contact's latest record for that purpose, whatever its source. So a shop
// repeating the same state on every customer update writes one record, and
// an old "subscribed" on a shop can never undo a STOP the contact sent on
// WhatsApp afterwards. It returns the records written (possibly none).
func (s *Service) RecordIfNewer(ctx context.Context, tenantID string, in NewRecord) ([]Record, error) {
	if in.OccurredAt.IsZero() {
		return nil, errors.New("consent: RecordIfNewer needs OccurredAt")
	}
	if now := s.now(); in.OccurredAt.After(now) {
		// A shop's clock a little ahead must not make the record invalid.
		in.OccurredAt = now
	}
	if err := s.checkNewRecord(&in); err != nil {
		return nil, err
	}
	var out []Record
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockContactExclusive(ctx, tx, in.ContactID); err != nil {
			return err
		}
		var newer []string
		for _, purpose := range in.Purposes {
			var latest *time.Time
			err := tx.QueryRow(ctx, `
				SELECT max(occurred_at) FROM consent_records
				WHERE tenant_id = $1 AND contact_id = $2 AND purpose = $3`,
				tenantID, in.ContactID, purpose).Scan(&latest)
			if err != nil {
				return fmt.Errorf("reading latest consent record: %w", err)
			}
			if latest == nil || in.OccurredAt.After(*latest) {
				newer = append(newer, purpose)
			}
		}
		if len(newer) == 0 {
			return nil
		}
		rec := in
		rec.Purposes = newer
		var err error
		out, err = insertRecords(ctx, tx, tenantID, in.ContactID, rec, false)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("recording consent from %s: %w", in.Source, err)
	}
	return out, nil
}
