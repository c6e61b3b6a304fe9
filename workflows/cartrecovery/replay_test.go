package cartrecovery

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayRecoveredHistory replays a history recorded from the Temporal dev
// server (a checkout dispatched, the first step sent after its delay, an
// order that ended the sequence as recovered). A change to the workflow that
// is not replay-safe for running carts fails here; record a new history with
// `go test -run TestIntegrationWorkflowLifecycle -update` only together with
// a versioned change (workflow.GetVersion).
func TestReplayRecoveredHistory(t *testing.T) {
	t.Parallel()
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: WorkflowName})
	if err := r.ReplayWorkflowHistoryFromJSONFile(nil, filepath.Join("testdata", "recovered_history.json")); err != nil {
		t.Fatalf("replaying recorded history: %v", err)
	}
}
