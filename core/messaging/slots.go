package messaging

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SlotSource hands out a number's send slots from one schedule shared by
// every process that sends from the number. Meta counts a number's messages
// a second whichever process sends them: with a bucket per process, two
// `ponte serve` replicas (the Kubernetes manifests run two) would each send
// at the full tier and trip 130429.
type SlotSource interface {
	// Claim reserves n slots of number, interval apart, after every slot
	// already handed out to anyone (or from now, if those are past), and
	// returns how long from now the first one is. The slots are the
	// caller's; unused ones are not given back.
	Claim(ctx context.Context, number string, n int, interval time.Duration) (firstIn time.Duration, err error)
}

// SQLSlots is the SlotSource on Postgres: one row a number in send_budgets,
// holding the end of the slots handed out.
type SQLSlots struct {
	Pool *pgxpool.Pool
}

// claimSlotsSQL moves a number's schedule on by the claimed slots and
// returns where they start, on the database's clock, with that clock's
// reading: the caller turns the difference into a wait on its own clock, so
// processes whose clocks disagree still share one schedule.
const claimSlotsSQL = `
INSERT INTO send_budgets AS b (connection_id, tat)
VALUES ($1, clock_timestamp() + $2::bigint * interval '1 microsecond')
ON CONFLICT (connection_id) DO UPDATE
SET tat = GREATEST(b.tat, clock_timestamp()) + $2::bigint * interval '1 microsecond'
RETURNING tat - $2::bigint * interval '1 microsecond', clock_timestamp()`

// Claim implements [SlotSource]. The claim does not wait for its WAL
// flush: a schedule lost in a crash of Postgres itself is one nobody is
// sending on, and a flush for every twentieth of a second's slots would
// cost more than the sends' own commits share.
func (s SQLSlots) Claim(ctx context.Context, number string, n int, interval time.Duration) (time.Duration, error) {
	if n <= 0 || interval <= 0 {
		return 0, fmt.Errorf("claiming send slots: %d slots %v apart", n, interval)
	}
	span := (time.Duration(n) * interval).Microseconds()
	var start, dbNow time.Time
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit = off")
	b.Queue(claimSlotsSQL, number, span).QueryRow(func(row pgx.Row) error {
		return row.Scan(&start, &dbNow)
	})
	b.Queue("COMMIT")
	if err := s.Pool.SendBatch(ctx, b).Close(); err != nil {
		return 0, fmt.Errorf("claiming send slots of %s: %w", number, err)
	}
	return start.Sub(dbNow), nil
}

// claimTimeout bounds one claim; a send waiting longer for its slot is
// queued and tried again (the caller's paceErr path).
const claimTimeout = 5 * time.Second

// slotBlock is a run of claimed slots: next is the first unused one, end
// the time after the last.
type slotBlock struct {
	next, end time.Time
}

// shared is a bucket's state when its slots come from a [SlotSource]: the
// blocks claimed and not used up, and the claim in flight, if any. Guarded
// by the bucket's mu.
type shared struct {
	src    SlotSource
	clock  Clock
	number string
	// block is the most slots a claim takes: a twentieth of a second's
	// worth, the bucket's burst, so a number this process keeps busy
	// claims about twenty times a second whichever its tier.
	block int

	blocks   []slotBlock
	claiming chan struct{} // closed when the claim in flight ends
	claimErr error         // how the last claim failed, until the next starts
	waiting  int           // callers waiting for the claim in flight

	// Slots taken in the current and the previous window of a block's
	// duration: a claim takes about what this process used lately, so a
	// process sending now and then does not hold a block of slots it will
	// mostly drop while another process of the number is sending flat out.
	windowStart      time.Time
	usedNow, usedWas int
}

// noteUsed counts a slot taken at now.
func (sh *shared) noteUsed(now time.Time, window time.Duration) {
	switch elapsed := now.Sub(sh.windowStart); {
	case elapsed >= 2*window:
		sh.windowStart, sh.usedNow, sh.usedWas = now, 0, 0
	case elapsed >= window:
		sh.windowStart, sh.usedNow, sh.usedWas = sh.windowStart.Add(window), 0, sh.usedNow
	}
	sh.usedNow++
}

// claimSize is how many slots the next claim takes: what the process used
// over the last window or two, plus the callers waiting, from 1 to a block.
func (sh *shared) claimSize(now time.Time, window time.Duration, waiting int) int {
	recent := 0
	switch elapsed := now.Sub(sh.windowStart); {
	case elapsed < window:
		recent = sh.usedNow + sh.usedWas
	case elapsed < 2*window:
		recent = sh.usedNow
	}
	return min(max(recent+waiting, 1), sh.block)
}

// reserveShared takes the bucket's next claimed slot and returns when it
// may be used: at the slot, or up to the burst tolerance before it. It
// claims more slots when half a block is left, so a number sending at full
// speed finds its next block claimed before it needs it; a bucket out of
// slots waits for its claim. A claim takes about the slots this process
// used lately (see [shared.claimSize]).
//
// A slot whose time passed more than an interval ago is dropped, not used
// late: used late, it would go out together with the slots other processes
// hold for that moment, a burst Meta's bucket counts against the number.
func (b *bucket) reserveShared(ctx context.Context) (time.Time, error) {
	sh := b.shared
	for {
		b.mu.Lock()
		now := sh.clock.Now()
		stale := now.Add(-b.interval)
		left := 0
		for len(sh.blocks) > 0 {
			blk := &sh.blocks[0]
			if blk.next.Before(stale) {
				skip := (stale.Sub(blk.next) + b.interval - 1) / b.interval
				blk.next = blk.next.Add(skip * b.interval)
			}
			if !blk.next.Before(blk.end) {
				sh.blocks = sh.blocks[1:]
				continue
			}
			break
		}
		for _, blk := range sh.blocks {
			left += int((blk.end.Sub(blk.next) + b.interval - 1) / b.interval)
		}
		window := time.Duration(sh.block) * b.interval
		if left > 0 {
			slot := sh.blocks[0].next
			sh.blocks[0].next = slot.Add(b.interval)
			sh.noteUsed(now, window)
			if size := sh.claimSize(now, window, 0); left-1 <= size/2 && sh.claiming == nil {
				b.claimLocked(size)
			}
			b.mu.Unlock()
			at := slot.Add(-b.tau)
			if at.Before(now) {
				at = now
			}
			return at, nil
		}
		if sh.claiming == nil {
			if err := sh.claimErr; err != nil {
				// The claim this caller waited for failed: say so once,
				// and let the next caller claim again.
				sh.claimErr = nil
				b.mu.Unlock()
				return time.Time{}, err
			}
			b.claimLocked(sh.claimSize(now, window, sh.waiting+1))
		}
		wait := sh.claiming
		sh.waiting++
		b.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			b.mu.Lock()
			sh.waiting--
			b.mu.Unlock()
			return time.Time{}, ctx.Err()
		}
		b.mu.Lock()
		sh.waiting--
		b.mu.Unlock()
	}
}

// claimLocked starts a claim of n slots; b.mu is held.
func (b *bucket) claimLocked(n int) {
	sh := b.shared
	done := make(chan struct{})
	sh.claiming, sh.claimErr = done, nil
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
		firstIn, err := sh.src.Claim(ctx, sh.number, n, b.interval)
		cancel()
		now := sh.clock.Now()
		b.mu.Lock()
		defer b.mu.Unlock()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("%w (no slot within %v)", err, claimTimeout)
			}
			sh.claimErr = err
		} else {
			start := now.Add(firstIn)
			sh.blocks = append(sh.blocks, slotBlock{next: start, end: start.Add(time.Duration(n) * b.interval)})
		}
		sh.claiming = nil
		close(done)
	}()
}
