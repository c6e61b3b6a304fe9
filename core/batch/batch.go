// Package batch gathers concurrent requests into groups, the way a database
// gathers concurrent commits into one flush of its log: callers submit one
// request each, and a few workers each take whatever has queued up while
// their previous group ran and handle it in one go (one statement, one round
// trip). A lone request is handled at once, with no added wait, so grouping
// costs nothing at low load and saves most of the per-request overhead at
// high load.
package batch

import (
	"context"
	"slices"
	"sync"
)

// Batcher hands the requests submitted to it to flush in groups of at most
// max, with at most workers flushes running at once. Workers run only while
// requests are queued, so an idle Batcher holds no goroutine and needs no
// Close unless the caller wants to drain it.
type Batcher[T any] struct {
	flush   func([]T)
	workers int
	max     int

	mu      sync.Mutex
	queue   []T
	running int
	closed  bool
	idle    *sync.Cond // signalled when running drops to zero
}

// New returns a Batcher calling flush with groups of up to maxGroup
// requests, from at most workers goroutines at once. flush owns its slice.
func New[T any](workers, maxGroup int, flush func([]T)) *Batcher[T] {
	b := &Batcher[T]{flush: flush, workers: max(workers, 1), max: max(maxGroup, 1)}
	b.idle = sync.NewCond(&b.mu)
	return b
}

// Submit queues v for a group. It reports false, with v not queued, after
// Close: the caller then handles v itself.
func (b *Batcher[T]) Submit(v T) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.queue = append(b.queue, v)
	if b.running < b.workers {
		b.running++
		go b.run()
	}
	return true
}

// Close refuses further requests and returns once every queued one has been
// flushed.
func (b *Batcher[T]) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for b.running > 0 {
		b.idle.Wait()
	}
}

// run flushes groups until the queue is empty.
func (b *Batcher[T]) run() {
	for {
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.running--
			if b.running == 0 {
				b.idle.Broadcast()
			}
			b.mu.Unlock()
			return
		}
		n := min(len(b.queue), b.max)
		group := slices.Clone(b.queue[:n])
		clear(b.queue[:n]) // no references kept to flushed requests
		b.queue = b.queue[n:]
		if len(b.queue) == 0 {
			b.queue = b.queue[:0:0] // let the drained backing array go
		}
		b.mu.Unlock()
		b.flush(group)
	}
}

// Live returns the requests of a gathered group whose callers are still
// waiting (ctx(r) has not ended), reusing group's array: requests whose
// callers gave up while they queued are left out of the group's work. For
// each of those it calls gone, when not nil, with the context's error, so a
// caller that waits for an answer whatever its context does still gets one.
func Live[T any](group []T, ctx func(T) context.Context, gone func(T, error)) []T {
	live := group[:0]
	for _, r := range group {
		if err := ctx(r).Err(); err != nil {
			if gone != nil {
				gone(r, err)
			}
			continue
		}
		live = append(live, r)
	}
	return live
}
