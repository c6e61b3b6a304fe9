package messaging

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// Clock tells the time and waits; tests pass a fake one.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx ends, returning ctx's error then.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Pacer spaces sends the way Meta measures them: a token bucket per number at
// its throughput tier, and a minimum gap between two messages to the same
// recipient on the same number (Meta's pair rate limit, error 131056).
//
// The recipient gate is a next-allowed time per (number, recipient), kept in
// sharded maps: a send to a recipient who got a message a moment ago waits
// only its own turn, and every other recipient's send goes straight on. No
// lock is shared by all sends; a number's bucket is one small critical section
// per send.
//
// A number's throughput is shared with every other process sending from it
// when the Pacer has a [SlotSource] (the messaging service's always does,
// on Postgres): its bucket then draws its slots from the number's one
// schedule, a block at a time. The recipient gap stays per process: two
// processes sending to the same recipient within the gap is rare, and Meta
// answers it with 131056, which the service retries after the gap.
type Pacer struct {
	clock Clock
	gap   time.Duration
	seed  maphash.Seed
	slots SlotSource // nil: this process's own buckets

	shards [pacerShards]recipientShard

	mu      sync.Mutex
	buckets map[string]*bucket
}

const pacerShards = 64

type recipientShard struct {
	mu      sync.Mutex
	next    map[string]time.Time
	inserts int
}

// NewPacer returns a Pacer keeping gap between two messages to the same
// recipient. Meta's rule is 6 s; a little more absorbs the jitter between
// our clock and the moment Meta sees the request.
func NewPacer(clock Clock, gap time.Duration) *Pacer {
	if clock == nil {
		clock = realClock{}
	}
	p := &Pacer{clock: clock, gap: gap, seed: maphash.MakeSeed(), buckets: map[string]*bucket{}}
	for i := range p.shards {
		p.shards[i].next = map[string]time.Time{}
	}
	return p
}

// ShareThroughput makes the numbers' throughput come from src, shared with
// the other processes drawing from it; call it before the first send.
func (p *Pacer) ShareThroughput(src SlotSource) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.slots = src
	clear(p.buckets)
}

// Wait blocks until a message from number to recipient may go, at most rate
// messages per second from the number, or until ctx ends. On success the
// recipient's next turn is gap after now; on error nothing is consumed.
func (p *Pacer) Wait(ctx context.Context, number, recipient string, rate int) error {
	turn, err := p.WaitRecipient(ctx, number, recipient, nil)
	if err != nil {
		return err
	}
	if err := p.WaitThroughput(ctx, number, rate); err != nil {
		turn.Release()
		return err
	}
	turn.Sent()
	return nil
}

// Turn is a recipient's turn taken by [Pacer.WaitRecipient]: the send it
// belongs to either goes (Sent, right before the call) or not (Release).
type Turn struct {
	p       *Pacer
	key     string
	release func()
}

// WaitRecipient blocks until the recipient's turn on the number comes (the
// gap after the previous message to it), or until ctx ends; on error
// nothing is taken. A caller that waits for the number's throughput
// separately, right before its call ([Pacer.WaitThroughput]), uses it: a
// send's token is then taken when it goes, not some time before, so sends
// held up between the two (a group's commit) cannot leave together and
// trip Meta's bucket. beforeWait, when given, runs only when the turn is
// still to come, before the wait; its error gives the turn back and is
// returned.
func (p *Pacer) WaitRecipient(ctx context.Context, number, recipient string, beforeWait func() error) (Turn, error) {
	key := number + "\x00" + recipient
	slot, release := p.reserveRecipient(key)
	if d := slot.Sub(p.clock.Now()); d > 0 {
		if beforeWait != nil {
			if err := beforeWait(); err != nil {
				release()
				return Turn{}, err
			}
			d = slot.Sub(p.clock.Now())
		}
		if err := p.clock.Sleep(ctx, d); err != nil {
			release()
			return Turn{}, err
		}
	}
	return Turn{p: p, key: key, release: release}, nil
}

// WaitThroughput blocks until the number may send its next message, at most
// rate a second, or until ctx ends; on error no token is taken.
func (p *Pacer) WaitThroughput(ctx context.Context, number string, rate int) error {
	b := p.bucket(number, rate)
	var at time.Time
	if b.shared != nil {
		var err error
		if at, err = b.reserveShared(ctx); err != nil {
			return fmt.Errorf("waiting for a send slot of %s: %w", number, err)
		}
	} else {
		at = b.reserve(p.clock.Now())
	}
	if d := at.Sub(p.clock.Now()); d > 0 {
		if err := p.clock.Sleep(ctx, d); err != nil {
			b.giveBack()
			return err
		}
	}
	return nil
}

// Sent records that the turn's message goes now: the recipient's next turn
// is gap after now, which a throughput wait may have pushed past the
// reserved slot.
func (t Turn) Sent() {
	if t.p != nil {
		t.p.sent(t.key, t.p.clock.Now())
	}
}

// Release gives the turn back to a send that will not happen.
func (t Turn) Release() {
	if t.release != nil {
		t.release()
	}
}

// reserveRecipient takes the recipient's next turn: now when it is free,
// else the time its previous message plus gap allows. release gives the turn
// back to a send that will not happen.
func (p *Pacer) reserveRecipient(key string) (slot time.Time, release func()) {
	sh := &p.shards[maphash.String(p.seed, key)%pacerShards]
	now := p.clock.Now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	prev, had := sh.next[key]
	slot = now
	if had && prev.After(now) {
		slot = prev
	}
	reserved := slot.Add(p.gap)
	sh.next[key] = reserved
	sh.inserts++
	if sh.inserts >= 4096 {
		// Forget recipients whose gap has passed; amortized, so the maps
		// stay as big as the last gap's worth of recipients.
		sh.inserts = 0
		for k, t := range sh.next {
			if t.Before(now) {
				delete(sh.next, k)
			}
		}
	}
	return slot, func() {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		if cur, ok := sh.next[key]; ok && cur.Equal(reserved) {
			if had {
				sh.next[key] = prev
			} else {
				delete(sh.next, key)
			}
		}
	}
}

func (p *Pacer) sent(key string, at time.Time) {
	sh := &p.shards[maphash.String(p.seed, key)%pacerShards]
	sh.mu.Lock()
	if next := at.Add(p.gap); next.After(sh.next[key]) {
		sh.next[key] = next
	}
	sh.mu.Unlock()
}

func (p *Pacer) bucket(number string, rate int) *bucket {
	if rate <= 0 {
		rate = defaultTier
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.buckets[number]
	if !ok || b.rate != rate {
		b = newBucket(rate)
		if p.slots != nil {
			b.shared = &shared{src: p.slots, clock: p.clock, number: number, block: int(b.tau/b.interval) + 1}
		}
		p.buckets[number] = b
	}
	return b
}

// defaultTier is a number's throughput when none is known: Meta's default
// of 80 messages a second.
const defaultTier = 80

// bucket is a token bucket in its GCRA form: tat is the theoretical arrival
// time of the next conforming message; a message may go at tat minus the
// burst tolerance. One time value instead of a token count and a refill
// timestamp, and reservations in the future fall out naturally.
type bucket struct {
	rate     int
	interval time.Duration
	tau      time.Duration // burst tolerance

	mu  sync.Mutex
	tat time.Time // this process's schedule, when not shared
	// shared, when set, replaces tat: the slots come from the number's
	// schedule shared with other processes.
	shared *shared
}

// newBucket allows rate messages per second with a burst of a twentieth of
// a second's worth (at least 1). Meta's own bucket has a small burst too
// (about a tenth of a second's worth); keeping ours smaller leaves the
// difference in Meta's bucket as a cushion for the jitter between when we
// send and when Meta counts, so pacing at the full rate does not trip 130429.
func newBucket(rate int) *bucket {
	if rate <= 0 {
		rate = defaultTier
	}
	burst := max(rate/20, 1)
	interval := time.Second / time.Duration(rate)
	return &bucket{rate: rate, interval: interval, tau: time.Duration(burst-1) * interval}
}

// reserve takes the next token and returns when it may be used.
func (b *bucket) reserve(now time.Time) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	tat := b.tat
	if tat.Before(now) {
		tat = now
	}
	at := tat.Add(-b.tau)
	if at.Before(now) {
		at = now
	}
	b.tat = tat.Add(b.interval)
	return at
}

// giveBack returns a reserved token that was not used. A shared slot is
// not given back: other processes may hold the slots after it, and a wasted
// slot only slows the number down by one message.
func (b *bucket) giveBack() {
	if b.shared != nil {
		return
	}
	b.mu.Lock()
	b.tat = b.tat.Add(-b.interval)
	b.mu.Unlock()
}
