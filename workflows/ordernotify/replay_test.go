package ordernotify

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayDeliveredHistory replays a history recorded from the Temporal dev
// server (an order created, delivered, its review request sent 2 s later). A
// change to the workflow that is not replay-safe for running workflows fails
// here; record a new history with
// `go test -run TestIntegrationOrderNotifications -update` only together with
// a versioned change (workflow.GetVersion).
func TestReplayDeliveredHistory(t *testing.T) {
	t.Parallel()
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: WorkflowType})
	if err := r.ReplayWorkflowHistoryFromJSONFile(nil, filepath.Join("testdata", "delivered_history.json")); err != nil {
		t.Fatalf("replaying recorded history: %v", err)
	}
}
