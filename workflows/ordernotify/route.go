package ordernotify

import (
	"context"
	"fmt"
	"strings"

	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/plugins/sdk/commerce"
)

// Route returns the dispatch route of order events: an order.* or
// fulfillment.* event naming its order (commerce.CorrelationOrder) is
// signalled to the order's workflow, which is started on taskQueue when not
// running (signal-with-start), but only while the shop connection's order
// notifications are enabled; otherwise the event concerns no workflow.
//
// order.deleted only signals a running workflow (ending it) and starts none:
// a workflow started to hear that its order is gone would have nothing to do.
func Route(settings SettingsLoader, taskQueue string) dispatch.Router {
	return dispatch.RouterFunc(func(ctx context.Context, ev dispatch.Event) ([]dispatch.Delivery, error) {
		orderID := ev.Correlation[commerce.CorrelationOrder]
		if orderID == "" || !(strings.HasPrefix(ev.Type, "order.") || strings.HasPrefix(ev.Type, "fulfillment.")) {
			return nil, nil
		}
		st, found, err := settings.Load(ctx, ev.TenantID, ev.ConnectionID)
		if err != nil {
			return nil, fmt.Errorf("loading order notification settings of connection %s: %w", ev.ConnectionID, err)
		}
		if !found || !st.Enabled {
			return nil, nil
		}
		ref := OrderRef{TenantID: ev.TenantID, ConnectionID: ev.ConnectionID, OrderID: orderID}
		d := dispatch.Delivery{
			WorkflowID:   WorkflowID(ev.TenantID, ev.ConnectionID, orderID),
			WorkflowType: WorkflowType,
			TaskQueue:    taskQueue,
			StartArgs:    []any{WorkflowInput{OrderRef: ref}},
			SignalName:   SignalOrderEvent,
			SignalArg:    OrderEvent{EventID: ev.ID, Type: ev.Type, OccurredAt: ev.OccurredAt, Payload: ev.Payload},
		}
		if ev.Type == commerce.EventOrderDeleted {
			d.SignalOnly = true
			d.IfNotRunning = func(context.Context) error { return nil }
		}
		return []dispatch.Delivery{d}, nil
	})
}
