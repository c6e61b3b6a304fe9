package messaging

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNextState(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type update struct {
		status Status
		sec    int
		code   string
	}
	type final struct {
		Status                          Status
		Reason, Code                    string
		Sent, Delivered, Read, FailedAt bool
	}
	cases := map[string]struct {
		start   Status
		updates []update
		want    final
		changes int // how many updates changed something
	}{
		"in order":                {StatusSending, []update{{StatusSent, 1, ""}, {StatusDelivered, 2, ""}, {StatusRead, 3, ""}}, final{Status: StatusRead, Sent: true, Delivered: true, Read: true}, 3},
		"every status twice":      {StatusSent, []update{{StatusSent, 1, ""}, {StatusSent, 1, ""}, {StatusDelivered, 2, ""}, {StatusDelivered, 2, ""}, {StatusRead, 3, ""}, {StatusRead, 3, ""}}, final{Status: StatusRead, Sent: true, Delivered: true, Read: true}, 3},
		"read before delivered":   {StatusSent, []update{{StatusRead, 3, ""}, {StatusDelivered, 2, ""}}, final{Status: StatusRead, Delivered: true, Read: true}, 2},
		"read before sent":        {StatusSending, []update{{StatusRead, 3, ""}, {StatusSent, 1, ""}, {StatusDelivered, 2, ""}}, final{Status: StatusRead, Sent: true, Delivered: true, Read: true}, 3},
		"failed after sent":       {StatusSent, []update{{StatusFailed, 2, "131026"}}, final{Status: StatusFailed, Reason: ReasonStatusFailed, Code: "131026", FailedAt: true}, 1},
		"failed twice":            {StatusSent, []update{{StatusFailed, 2, "131026"}, {StatusFailed, 3, "131026"}}, final{Status: StatusFailed, Reason: ReasonStatusFailed, Code: "131026", FailedAt: true}, 1},
		"late sent after failed":  {StatusSending, []update{{StatusFailed, 2, "131049"}, {StatusSent, 1, ""}}, final{Status: StatusFailed, Reason: ReasonStatusFailed, Code: "131049", Sent: true, FailedAt: true}, 2},
		"read proves delivery":    {StatusSent, []update{{StatusFailed, 2, "131000"}, {StatusRead, 3, ""}}, final{Status: StatusRead, Code: "131000", Read: true, FailedAt: true}, 2},
		"failed after delivered":  {StatusSent, []update{{StatusDelivered, 2, ""}, {StatusFailed, 3, "131000"}}, final{Status: StatusDelivered, Delivered: true}, 1},
		"unknown settled by sent": {StatusUnknown, []update{{StatusSent, 1, ""}}, final{Status: StatusSent, Sent: true}, 1},
		"sending settled by read": {StatusSending, []update{{StatusDelivered, 2, ""}}, final{Status: StatusDelivered, Delivered: true}, 1},
		"refused left alone":      {StatusRefused, []update{{StatusSent, 1, ""}}, final{Status: StatusRefused}, 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := rowState{Status: tc.start}
			if tc.start == StatusSent {
				// markSent sets no sent_at in this table; the webhook does.
				st.SentAt = nil
			}
			changes := 0
			for _, u := range tc.updates {
				next, changed := nextState(st, u.status, at(u.sec), u.code, "")
				if changed {
					changes++
				}
				st = next
			}
			got := final{Status: st.Status, Reason: st.StatusReason, Code: st.ErrorCode, Sent: st.SentAt != nil,
				Delivered: st.DeliveredAt != nil, Read: st.ReadAt != nil, FailedAt: st.FailedAt != nil}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("final state (-want +got):\n%s", diff)
			}
			if changes != tc.changes {
				t.Errorf("%d updates changed the row, want %d", changes, tc.changes)
			}
		})
	}
}

// TestNextStateOrderIndependent applies every permutation of sent,
// delivered and read (each also duplicated) and expects the same row.
func TestNextStateOrderIndependent(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	ts := map[Status]time.Time{StatusSent: t0, StatusDelivered: t0.Add(time.Second), StatusRead: t0.Add(2 * time.Second)}
	perms := [][]Status{
		{StatusSent, StatusDelivered, StatusRead}, {StatusSent, StatusRead, StatusDelivered},
		{StatusDelivered, StatusSent, StatusRead}, {StatusDelivered, StatusRead, StatusSent},
		{StatusRead, StatusSent, StatusDelivered}, {StatusRead, StatusDelivered, StatusSent},
	}
	var want *rowState
	for _, p := range perms {
		st := rowState{Status: StatusSending}
		for _, s := range append(p, p...) {
			st, _ = nextState(st, s, ts[s], "", "")
		}
		if want == nil {
			want = &st
			continue
		}
		if !sameState(*want, st) {
			t.Errorf("order %v ends %+v, want %+v", p, st, *want)
		}
	}
	if want.Status != StatusRead {
		t.Errorf("final status %s, want read", want.Status)
	}
}
