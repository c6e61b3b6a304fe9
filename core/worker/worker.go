// Package worker assembles Ponte's Temporal worker: every workflow and
// activity registered on the task queue, and the dispatch routing table made
// of the workflows' routes.
package worker

import (
	"cmp"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/ponte-hub/ponte/core/automations"
	"github.com/ponte-hub/ponte/core/consent"
	"github.com/ponte-hub/ponte/core/contacts"
	"github.com/ponte-hub/ponte/core/dispatch"
	"github.com/ponte-hub/ponte/core/messaging"
	"github.com/ponte-hub/ponte/workflows/cartrecovery"
	"github.com/ponte-hub/ponte/workflows/ordernotify"
	"github.com/ponte-hub/ponte/workflows/paymentlink"
)

// TaskQueue is the task queue Ponte's workflows and activities run on.
const TaskQueue = "ponte"

// Deps are what the workflows' activities and routes need.
type Deps struct {
	// Pool is the Postgres pool holding the workflows' tables.
	Pool *pgxpool.Pool
	// TaskQueue is where routes start workflows; empty means TaskQueue.
	TaskQueue string
	// Invoker runs connector actions (a *invoke.Invoker).
	Invoker paymentlink.Invoker
	// Messenger sends WhatsApp messages for the workflows (a
	// *messaging.Service); nil fails the workflows' chat steps.
	Messenger paymentlink.Messenger
	// Contacts and Consent are the contacts service and the consent gate,
	// which cart recovery reads before each message; required by the
	// worker of a full installation.
	Contacts *contacts.Service
	Consent  *consent.Service
	// PaymentLinkChat configures the payment link's chat messages.
	PaymentLinkChat paymentlink.ChatConfig
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (d Deps) taskQueue() string { return cmp.Or(d.TaskQueue, TaskQueue) }

func (d Deps) logger() *slog.Logger { return cmp.Or(d.Logger, slog.Default()) }

// SetCacheSize sets how many workflows workers keep in memory between tasks
// (the SDK's sticky cache, shared by every worker of the process). Call it
// before New; n <= 0 leaves the SDK's default.
func SetCacheSize(n int) {
	if n > 0 {
		worker.SetStickyWorkflowCacheSize(n)
	}
}

// New returns a worker on taskQueue with every workflow and activity
// registered. The caller starts and stops it.
func New(c client.Client, taskQueue string, deps Deps) worker.Worker {
	w := worker.New(c, taskQueue, worker.Options{
		// The SDK's default of two pollers per task type caps a worker at
		// the round trips two long polls make: on this project's 2-core
		// reference machine, 46 new workflows/s against the dev server
		// whatever else is idle; eight pollers reach 75/s, where the
		// server's own CPU becomes the limit (measured with a trivial
		// signal-with-start workflow).
		MaxConcurrentWorkflowTaskPollers: 8,
		MaxConcurrentActivityTaskPollers: 8,
	})
	Register(w, deps)
	return w
}

// Register registers every workflow and activity on r; New uses it, and tests
// use it with a test environment or a replayer.
func Register(r worker.Registry, deps Deps) {
	settings := automations.NewStore(deps.Pool)
	paymentlink.Register(r, &paymentlink.Activities{
		Store:     paymentlink.NewDB(deps.Pool),
		Invoker:   deps.Invoker,
		Messenger: deps.Messenger,
		Chat:      deps.PaymentLinkChat,
	})
	cartrecovery.Register(r, &cartrecovery.Activities{
		Store:     cartrecovery.NewDB(deps.Pool),
		Settings:  settings,
		Invoker:   deps.Invoker,
		Messenger: deps.Messenger,
		Consent:   deps.Consent,
		Inbox:     deps.Contacts,
		Logger:    deps.logger(),
	})
	ordernotify.Register(r, &ordernotify.Activities{
		Store:     ordernotify.NewDB(deps.Pool),
		Settings:  ordernotify.AutomationSettings{Store: settings},
		Messenger: deps.Messenger,
		Window:    ordernotify.DirectoryWindow{Directory: messaging.NewSQLDirectory(deps.Pool)},
		Logger:    deps.logger(),
	})
}

// Router returns the dispatcher's routing table: each workflow's route.
func Router(deps Deps) dispatch.Router {
	settings := automations.NewStore(deps.Pool)
	return dispatch.Routes{
		paymentlink.Route(paymentlink.NewDB(deps.Pool)),
		cartrecovery.Route(cartrecovery.NewDB(deps.Pool), settings, deps.taskQueue(), deps.logger()),
		ordernotify.Route(ordernotify.AutomationSettings{Store: settings}, deps.taskQueue()),
	}
}
