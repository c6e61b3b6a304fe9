package messaging

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBucket(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	cases := map[string]struct {
		rate int
		n    int
		want time.Duration // when the n-th reservation (1-based) may go, from t0
	}{
		"80/s first":           {80, 1, 0},
		"80/s burst of 4":      {80, 4, 0},
		"80/s fifth waits":     {80, 5, time.Second / 80},
		"80/s 80th":            {80, 80, 76 * (time.Second / 80)},
		"1000/s burst of 50":   {1000, 50, 0},
		"1000/s 1000th":        {1000, 1000, 950 * time.Millisecond},
		"1000/s 1050th is 1 s": {1000, 1050, time.Second},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBucket(tc.rate)
			var at time.Time
			for range tc.n {
				at = b.reserve(t0)
			}
			if got := at.Sub(t0); got != tc.want {
				t.Errorf("reservation %d at +%v, want +%v", tc.n, got, tc.want)
			}
		})
	}
}

func TestBucketRefills(t *testing.T) {
	t.Parallel()
	b := newBucket(80)
	t0 := time.Unix(1_700_000_000, 0)
	for range 4 {
		b.reserve(t0)
	}
	// After a quiet second the whole burst is back, not a second's worth of
	// tokens on top of it.
	t1 := t0.Add(time.Second)
	for i := range 4 {
		if at := b.reserve(t1); !at.Equal(t1) {
			t.Fatalf("reservation %d after refill at %v, want at once", i, at.Sub(t1))
		}
	}
	if at := b.reserve(t1); !at.After(t1) {
		t.Errorf("reservation beyond the burst went at once")
	}
}

// TestPacerRecipients checks the per-recipient gap: a second message to the
// same recipient waits its turn, and messages to others meanwhile do not.
func TestPacerRecipients(t *testing.T) {
	t.Parallel()
	type step struct {
		advance   time.Duration
		recipient string
		waits     time.Duration // how long Wait slept
	}
	cases := map[string][]step{
		"two to one recipient": {
			{0, "+391", 0},
			{time.Second, "+391", 5 * time.Second},
		},
		"others do not wait": {
			{0, "+391", 0},
			{0, "+391", 6 * time.Second},
			{0, "+392", 0}, // after +391's wait: the clock moved, +392 is free
			{0, "+393", 0},
		},
		"gap passed": {
			{0, "+391", 0},
			{7 * time.Second, "+391", 0},
		},
		"three in a row": {
			{0, "+391", 0},
			{0, "+391", 6 * time.Second},
			{0, "+391", 6 * time.Second},
		},
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			p := NewPacer(clock, 6*time.Second)
			var got, want []time.Duration
			for _, s := range steps {
				clock.Advance(s.advance)
				before := clock.Now()
				if err := p.Wait(context.Background(), "con_1", s.recipient, 1000); err != nil {
					t.Fatal(err)
				}
				got = append(got, clock.Now().Sub(before))
				want = append(want, s.waits)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
		})
	}
}

// blockingClock sleeps for real only on long waits, so a test can hold one
// recipient's send in its wait and check another goes through meanwhile.
type blockingClock struct{ *fakeClock }

func (c blockingClock) Sleep(ctx context.Context, d time.Duration) error {
	if d >= time.Second {
		<-ctx.Done()
		return ctx.Err()
	}
	return c.fakeClock.Sleep(ctx, d)
}

func TestPacerDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	clock := blockingClock{newFakeClock()}
	p := NewPacer(clock, 6*time.Second)
	if err := p.Wait(context.Background(), "con_1", "+391", 80); err != nil {
		t.Fatal(err)
	}
	// The second message to +391 must wait 6 s: it blocks until cancelled.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Wait(ctx, "con_1", "+391", 80) }()
	// Meanwhile 50 other recipients go at once (within the bucket's pace).
	for i := range 50 {
		waitDone := make(chan error, 1)
		go func() {
			waitDone <- p.Wait(context.Background(), "con_1", "+39200"+string(rune('a'+i%26))+string(rune('a'+i/26)), 80)
		}()
		select {
		case err := <-waitDone:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("a send to another recipient was held up by +391's wait")
		}
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the waiting send returned without its turn")
	}
	// The cancelled wait gave its turn back: +391's next turn is 6 s after
	// its first message, not 12.
	clock.Advance(6 * time.Second)
	before := clock.Now()
	if err := p.Wait(context.Background(), "con_1", "+391", 80); err != nil {
		t.Fatal(err)
	}
	if w := clock.Now().Sub(before); w >= time.Second {
		t.Errorf("after the cancelled wait, +391 waited %v more", w)
	}
}

// TestPacerTurnAndToken: a recipient's turn taken without a token counts
// its gap from Sent, not from the turn; a released turn leaves the
// recipient free; and tokens taken as sends go space them at the rate
// however long they waited after their turn.
func TestPacerTurnAndToken(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	p := NewPacer(clock, 6*time.Second)
	ctx := context.Background()

	turn, err := p.WaitRecipient(ctx, "con_1", "+391", nil)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second) // held up (a group's commit, say)
	turn.Sent()
	before := clock.Now()
	if err := p.Wait(ctx, "con_1", "+391", 1000); err != nil {
		t.Fatal(err)
	}
	if waited := clock.Now().Sub(before); waited != 6*time.Second {
		t.Errorf("the next message to +391 waited %v after the first went, want 6s", waited)
	}

	turn, err = p.WaitRecipient(ctx, "con_1", "+392", nil)
	if err != nil {
		t.Fatal(err)
	}
	turn.Release()
	before = clock.Now()
	if _, err := p.WaitRecipient(ctx, "con_1", "+392", nil); err != nil || clock.Now() != before {
		t.Errorf("after a released turn +392 waited %v (%v), want 0", clock.Now().Sub(before), err)
	}

	// 100 tokens at 50/s with a burst of 1 (50/20 = 2, tolerance one
	// interval): the first two at once, then one per 20 ms.
	start := clock.Now()
	var last time.Time
	for range 100 {
		if err := p.WaitThroughput(ctx, "con_2", 50); err != nil {
			t.Fatal(err)
		}
		last = clock.Now()
	}
	if got, want := last.Sub(start), 98*20*time.Millisecond; got != want {
		t.Errorf("100 tokens at 50/s took %v, want %v", got, want)
	}
}
