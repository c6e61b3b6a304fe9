// Package worker assembles Ponte's Temporal worker: every workflow and
// activity registered on the task queue, and the dispatch routing table made
// of the workflows' routes.
package worker

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/workflows/paymentlink"
)

// TaskQueue is the task queue Ponte's workflows and activities run on.
const TaskQueue = "ponte"

// Deps are what the workflows' activities and routes need.
type Deps struct {
	// Pool is the Postgres pool holding the workflows' tables.
	Pool *pgxpool.Pool
	// Invoker runs connector actions (a *invoke.Invoker).
	Invoker paymentlink.Invoker
	// Messenger sends WhatsApp messages for the workflows (a
	// *messaging.Service); nil fails the workflows' chat steps.
	Messenger paymentlink.Messenger
	// PaymentLinkChat configures the payment link's chat messages.
	PaymentLinkChat paymentlink.ChatConfig
}

// New returns a worker on taskQueue with every workflow and activity
// registered. The caller starts and stops it.
func New(c client.Client, taskQueue string, deps Deps) worker.Worker {
	w := worker.New(c, taskQueue, worker.Options{})
	Register(w, deps)
	return w
}

// Register registers every workflow and activity on r; New uses it, and tests
// use it with a test environment or a replayer.
func Register(r worker.Registry, deps Deps) {
	paymentlink.Register(r, &paymentlink.Activities{
		Store:     paymentlink.NewDB(deps.Pool),
		Invoker:   deps.Invoker,
		Messenger: deps.Messenger,
		Chat:      deps.PaymentLinkChat,
	})
}

// Router returns the dispatcher's routing table: each workflow's route.
func Router(deps Deps) dispatch.Router {
	return dispatch.Routes{
		paymentlink.Route(paymentlink.NewDB(deps.Pool)),
	}
}
