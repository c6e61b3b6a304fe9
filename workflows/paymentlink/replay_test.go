package paymentlink

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayPaidHistory replays a history recorded from the Temporal dev
// server (a link created, paid through a dispatched event). A change to the
// workflow that is not replay-safe for running workflows fails here; record a
// new history with `go test -run TestIntegrationPaymentLinkLifecycle ./workflows/paymentlink -args -update`
// only together with a versioned change (workflow.GetVersion).
func TestReplayPaidHistory(t *testing.T) {
	t.Parallel()
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: WorkflowName})
	if err := r.ReplayWorkflowHistoryFromJSONFile(nil, filepath.Join("testdata", "paid_history.json")); err != nil {
		t.Fatalf("replaying recorded history: %v", err)
	}
}

// TestReplayChatPaidHistory replays a history of a link created for a chat
// (the link sent to the customer, paid, the payment confirmed in the chat),
// recorded from the Temporal dev server by TestIntegrationPaymentLinkChat
// with -update. It guards the chat steps as TestReplayPaidHistory guards the
// rest.
func TestReplayChatPaidHistory(t *testing.T) {
	t.Parallel()
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: WorkflowName})
	if err := r.ReplayWorkflowHistoryFromJSONFile(nil, filepath.Join("testdata", "chat_paid_history.json")); err != nil {
		t.Fatalf("replaying recorded history: %v", err)
	}
}
