package messaging

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// sharedSchedule is a SlotSource in memory: one schedule on the test's
// clock, as SQLSlots keeps one in Postgres.
type sharedSchedule struct {
	clock Clock

	mu     sync.Mutex
	tat    map[string]time.Time
	claims int
	fail   error
}

func newSharedSchedule(clock Clock) *sharedSchedule {
	return &sharedSchedule{clock: clock, tat: map[string]time.Time{}}
}

func (s *sharedSchedule) Claim(_ context.Context, number string, n int, interval time.Duration) (time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	now := s.clock.Now()
	start := s.tat[number]
	if start.Before(now) {
		start = now
	}
	s.tat[number] = start.Add(time.Duration(n) * interval)
	s.claims++
	return start.Sub(now), nil
}

// twoProcesses returns the pacers of two processes sharing one schedule.
func twoProcesses() (*fakeClock, *sharedSchedule, *Pacer, *Pacer) {
	clock := newFakeClock()
	schedule := newSharedSchedule(clock)
	a, b := NewPacer(clock, 6*time.Second), NewPacer(clock, 6*time.Second)
	a.ShareThroughput(schedule)
	b.ShareThroughput(schedule)
	return clock, schedule, a, b
}

func (s *sharedSchedule) claimCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.claims
}

// TestPacersShareANumber: two processes' pacers sending from one number
// through one schedule send at the number's rate together, not each at it.
// With a bucket each (no SlotSource) the same 2,000 sends take half the
// time and a second holds twice the tier, and this test fails.
func TestPacersShareANumber(t *testing.T) {
	t.Parallel()
	clock, schedule, a, b := twoProcesses()
	ctx := context.Background()

	const rate, sends = 1000, 2000
	var sent []time.Time
	start := clock.Now()
	for i := range sends {
		p := a
		if i%3 == 0 { // unevenly: one process sends twice as often
			p = b
		}
		if err := p.WaitThroughput(ctx, "con_1", rate); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, clock.Now())
	}
	if took := sent[len(sent)-1].Sub(start); took < 1800*time.Millisecond {
		t.Errorf("%d sends at %d/s from two processes took %v, want about 2 s", sends, rate, took)
	}
	// Any second holds at most the rate plus the burst, with a burst's
	// worth of room for the time a claim's answer takes to be used.
	slices.SortFunc(sent, func(x, y time.Time) int { return x.Compare(y) })
	most := 0
	for i, at := range sent {
		j, _ := slices.BinarySearchFunc(sent, at.Add(time.Second), func(x, y time.Time) int { return x.Compare(y) })
		most = max(most, j-i)
	}
	if most > rate+2*rate/20 {
		t.Errorf("a second held %d sends, want at most %d", most, rate+2*rate/20)
	}
	// Slots are claimed several at a time (each process about what it used
	// in the last 50 ms), not one claim a send.
	if n := schedule.claimCount(); n > sends/10 {
		t.Errorf("%d claims for %d sends, want at most %d", n, sends, sends/10)
	}
}

// TestSharedSlotsOccasionalSender: a process sending now and then claims
// about what it uses, so it does not starve a process of the same number
// that sends flat out. Were every claim a whole block (50 slots at 1,000/s),
// each occasional send would throw away 49 slots of the number's second.
func TestSharedSlotsOccasionalSender(t *testing.T) {
	t.Parallel()
	clock, _, busy, occasional := twoProcesses()
	ctx := context.Background()

	const rate, sends = 1000, 2000
	start := clock.Now()
	for i := range sends {
		p := busy
		if i%50 == 0 {
			p = occasional // 40 sends spread over the run
		}
		if err := p.WaitThroughput(ctx, "con_1", rate); err != nil {
			t.Fatal(err)
		}
	}
	if took := clock.Now().Sub(start); took > 2100*time.Millisecond {
		t.Errorf("%d sends at %d/s took %v, want about 2 s", sends, rate, took)
	}
}

// TestSharedSlotsStaleAndFailed: slots left over from a quiet spell are
// dropped, not sent late on top of other processes' slots; a failed claim
// fails the wait that needed it, and the next wait claims again.
func TestSharedSlotsStaleAndFailed(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	schedule := newSharedSchedule(clock)
	p := NewPacer(clock, 6*time.Second)
	p.ShareThroughput(schedule)
	ctx := context.Background()

	if err := p.WaitThroughput(ctx, "con_1", 1000); err != nil {
		t.Fatal(err)
	}
	waitClaims(t, schedule, 1)
	clock.Advance(10 * time.Second)
	before := clock.Now()
	if err := p.WaitThroughput(ctx, "con_1", 1000); err != nil {
		t.Fatal(err)
	}
	if clock.Now() != before {
		t.Errorf("the first send after a quiet spell waited %v", clock.Now().Sub(before))
	}
	// The 49 slots left from 10 s ago were dropped: this send needed a
	// new claim.
	waitClaims(t, schedule, 2)

	clock.Advance(10 * time.Second)
	down := errors.New("database down")
	schedule.mu.Lock()
	schedule.fail = down
	schedule.mu.Unlock()
	if err := p.WaitThroughput(ctx, "con_1", 1000); !errors.Is(err, down) {
		t.Fatalf("wait with the schedule down: %v, want %v", err, down)
	}
	schedule.mu.Lock()
	schedule.fail = nil
	schedule.mu.Unlock()
	if err := p.WaitThroughput(ctx, "con_1", 1000); err != nil {
		t.Fatalf("wait after the schedule came back: %v", err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	clock.Advance(10 * time.Second)
	schedule.mu.Lock()
	schedule.fail = down // the claim would fail; the caller gave up first
	schedule.mu.Unlock()
	if err := p.WaitThroughput(cancelled, "con_1", 1000); err == nil {
		t.Error("a wait whose context ended got a slot")
	}
}

func waitClaims(t *testing.T, s *sharedSchedule, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.claimCount() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d claims, want %d", s.claimCount(), want)
		}
		time.Sleep(time.Millisecond)
	}
	if got := s.claimCount(); got != want {
		t.Fatalf("%d claims, want %d", got, want)
	}
}
