package paymentlink

import (
	"context"
	"errors"
	"fmt"

	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/core/store"
)

// Route returns the dispatch route of payment events: an event whose
// correlation names a payment link (CorrelationKey) is signalled to that
// link's workflow.
//
// The delivery is signal-only: a payment link's workflow is started by
// Service.Create and nothing else, because starting one from an event would
// create a second provider link for a payment that already happened. When the
// workflow has completed (the link was paid, expired or failed), the event is
// applied to the row directly with the same rules the workflow uses (Apply):
// a refund after payment marks the link refunded, a payment after expiry marks
// it paid, anything else is recorded as ignored with its reason. Applying
// rather than dropping is what keeps the record true to the money: a refund
// may come months after the workflow ended, and keeping every workflow open
// that long just to hear of it would cost far more than this one UPDATE.
func Route(db *DB) dispatch.Router {
	return dispatch.RouterFunc(func(_ context.Context, ev dispatch.Event) ([]dispatch.Delivery, error) {
		linkID := ev.Correlation[CorrelationKey]
		if linkID == "" {
			return nil, nil
		}
		pe := PaymentEvent{EventID: ev.ID, Type: ev.Type, OccurredAt: ev.OccurredAt, Payload: ev.Payload}
		return []dispatch.Delivery{{
			WorkflowID: WorkflowID(ev.TenantID, linkID),
			SignalName: SignalPaymentEvent,
			SignalArg:  pe,
			SignalOnly: true,
			IfNotRunning: func(ctx context.Context) error {
				return db.ApplyToClosed(ctx, ev.TenantID, linkID, pe)
			},
		}}, nil
	})
}

// ApplyToClosed applies a payment event to a link whose workflow is no longer
// running. An event that changes nothing, or names a link the tenant does not
// have, is a dispatch.Permanent error carrying the reason, so the dispatcher
// records it and stops.
func (db *DB) ApplyToClosed(ctx context.Context, tenantID, linkID string, ev PaymentEvent) error {
	// The update is conditional on the status read; if the row moved in
	// between (a workflow still finishing), read again. Three tries are plenty
	// for a row that changes a handful of times in its life; after that the
	// dispatcher's own retry takes over.
	for range 3 {
		link, err := db.GetLink(ctx, tenantID, linkID)
		if errors.Is(err, store.ErrNotFound) {
			return dispatch.Permanent(fmt.Errorf("payment link %s not found", linkID))
		}
		if err != nil {
			return err
		}
		t := Apply(link.Status, ev)
		if t.Ignored() || t.To == "" {
			// A failed attempt on a link that is no longer open is history,
			// not news; only status changes apply to a closed link.
			return dispatch.Permanent(fmt.Errorf("event ignored by payment link %s (%s): %s", linkID, link.Status, t.Reason))
		}
		ok, err := db.Apply(ctx, Record{
			LinkRef: LinkRef{TenantID: tenantID, LinkID: linkID},
			From:    []Status{link.Status}, To: t.To, PaidAt: t.PaidAt, AmountPaid: t.AmountPaid, LastError: t.LastError,
		})
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("payment link %s changed while applying event %d", linkID, ev.EventID)
}
