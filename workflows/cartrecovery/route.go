package cartrecovery

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

// Inbound messages the reply route reads: the contacts package's
// message.received events of the Cloud API connector.
const (
	EventMessageReceived = "message.received"
	ChannelConnector     = "cloudapi"
)

// Route returns the dispatch route of cart recovery:
//
//   - checkout.* events naming a checkout (commerce.CorrelationCheckout) of a
//     shop connection whose cart recovery is enabled start or signal the
//     cart's workflow on taskQueue (signal-with-start). A deleted or
//     completed checkout only reaches a running workflow: it must not start
//     a sequence. With cart recovery disabled or never set up, checkout
//     events get no delivery (a workflow already running learns it when its
//     next step is due, before sending).
//   - order.* events naming a checkout reach the cart's running workflow,
//     which records the conversion and ends; when none runs, the order is
//     attributed to the cart's row directly (see DB.ApplyOrder), so an order
//     after the sequence ended still counts as recovered.
//   - message.received events of the Cloud API connector reach the
//     workflows of the tenant's open carts with the sender's phone, which
//     stop and hand the conversation to a human.
//
// Put this route after consent.Route in the dispatch table: the deliveries of
// one event run in order, so a STOP is then in the ledger before the reply
// reaches the workflow, and the cart records opted_out instead of replied.
// (The workflow also waits a few seconds before reading consent after a
// reply, which covers the other order unless the consent delivery fails and
// is retried later.)
func Route(db *DB, settings SettingsLoader, taskQueue string, log *slog.Logger) dispatch.Router {
	if log == nil {
		log = slog.Default()
	}
	return dispatch.RouterFunc(func(ctx context.Context, ev dispatch.Event) ([]dispatch.Delivery, error) {
		switch {
		case strings.HasPrefix(ev.Type, "checkout."):
			return routeCheckout(ctx, db, settings, taskQueue, log, ev)
		case strings.HasPrefix(ev.Type, "order."):
			return routeOrder(ctx, db, settings, log, ev)
		case ev.Type == EventMessageReceived && ev.Connector == ChannelConnector:
			return routeReply(ctx, db, ev)
		}
		return nil, nil
	})
}

func routeCheckout(ctx context.Context, db *DB, settings SettingsLoader, taskQueue string, log *slog.Logger, ev dispatch.Event) ([]dispatch.Delivery, error) {
	checkoutID := ev.Correlation[commerce.CorrelationCheckout]
	if checkoutID == "" {
		return nil, nil
	}
	s, err := loadSettings(ctx, settings, ev.TenantID, ev.ConnectionID, log)
	if err != nil {
		return nil, err
	}
	if !s.Enabled {
		return nil, nil
	}
	var co commerce.Checkout
	if err := json.Unmarshal(ev.Payload, &co); err != nil {
		return nil, dispatch.Permanent(fmt.Errorf("cart recovery: decoding checkout of event %d: %w", ev.ID, err))
	}
	if co.ID == "" {
		co.ID = checkoutID
	}
	ref := CartRef{TenantID: ev.TenantID, ConnectionID: ev.ConnectionID, CheckoutID: checkoutID}
	d := dispatch.Delivery{
		WorkflowID: ref.WorkflowID(),
		SignalName: SignalCheckout,
		SignalArg:  CheckoutEvent{EventID: ev.ID, Type: ev.Type, OccurredAt: ev.OccurredAt, Checkout: co},
	}
	if ev.Type == commerce.EventCheckoutDeleted || co.CompletedAt != nil {
		d.SignalOnly = true
		d.IfNotRunning = func(ctx context.Context) error {
			if co.CompletedAt == nil {
				return nil // nothing follows a deleted checkout that nobody follows
			}
			// A completed checkout is an order: attribute it, and leave a
			// tombstone when there is no row yet, so that this checkout's
			// earlier events, should they be dispatched after this one,
			// start no sequence.
			_, _, err := db.ApplyOrder(ctx, ref, OrderInfo{OrderID: co.OrderID, Total: co.Total, Currency: co.Currency, At: *co.CompletedAt}, true)
			return err
		}
		return []dispatch.Delivery{d}, nil
	}
	d.WorkflowType, d.TaskQueue = WorkflowName, taskQueue
	d.StartArgs = []any{WorkflowInput{CartRef: ref}}
	return []dispatch.Delivery{d}, nil
}

func routeOrder(ctx context.Context, db *DB, settings SettingsLoader, log *slog.Logger, ev dispatch.Event) ([]dispatch.Delivery, error) {
	checkoutID := ev.Correlation[commerce.CorrelationCheckout]
	if checkoutID == "" {
		return nil, nil
	}
	var o commerce.Order
	if err := json.Unmarshal(ev.Payload, &o); err != nil {
		return nil, dispatch.Permanent(fmt.Errorf("cart recovery: decoding order of event %d: %w", ev.ID, err))
	}
	ref := CartRef{TenantID: ev.TenantID, ConnectionID: ev.ConnectionID, CheckoutID: checkoutID}
	oe := OrderEvent{EventID: ev.ID, Type: ev.Type, OccurredAt: ev.OccurredAt, Order: o}
	return []dispatch.Delivery{{
		WorkflowID: ref.WorkflowID(),
		SignalName: SignalOrder,
		SignalArg:  oe,
		SignalOnly: true,
		IfNotRunning: func(ctx context.Context) error {
			// Leave a tombstone only where cart recovery is on: elsewhere no
			// checkout event will start a sequence, and every order of the
			// shop would otherwise leave a row.
			s, err := loadSettings(ctx, settings, ev.TenantID, ev.ConnectionID, log)
			if err != nil {
				return err
			}
			_, _, err = db.ApplyOrder(ctx, ref, orderInfo(oe), s.Enabled)
			return err
		},
	}}, nil
}

// inboundMessage is the part of a message.received payload the reply route
// reads.
type inboundMessage struct {
	From      string    `json:"from"`
	MessageID string    `json:"message_id"`
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
}

// notReplies are inbound kinds that are not the customer saying something
// (a reaction to the template, WhatsApp's own notices).
var notReplies = map[string]bool{"reaction": true, "system": true, "deleted": true, "revoke": true, "edit": true}

func routeReply(ctx context.Context, db *DB, ev dispatch.Event) ([]dispatch.Delivery, error) {
	var m inboundMessage
	if err := json.Unmarshal(ev.Payload, &m); err != nil {
		return nil, dispatch.Permanent(fmt.Errorf("cart recovery: decoding message.received payload of event %d: %w", ev.ID, err))
	}
	if m.From == "" || m.MessageID == "" || notReplies[m.Type] {
		return nil, nil
	}
	carts, err := db.OpenCarts(ctx, ev.TenantID, m.From)
	if err != nil {
		return nil, err
	}
	at := m.Timestamp
	if at.IsZero() {
		at = ev.OccurredAt
	}
	var out []dispatch.Delivery
	for _, ref := range carts {
		out = append(out, dispatch.Delivery{
			WorkflowID: ref.WorkflowID(),
			SignalName: SignalReply,
			SignalArg:  ReplyEvent{EventID: ev.ID, ConnectionID: ev.ConnectionID, From: m.From, MessageID: m.MessageID, At: at},
			SignalOnly: true,
			// An open row without a running workflow (one terminated by an
			// operator): the reply ends it all the same.
			IfNotRunning: func(ctx context.Context) error {
				_, err := db.End(ctx, EndRecord{CartRef: ref, Status: StatusEnded, Reason: ReasonReplied, At: at})
				return err
			},
		})
	}
	return out, nil
}
