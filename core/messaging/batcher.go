package messaging

import "sync"

// batcher gathers requests that queue up while its workers are busy, as a
// database gathers concurrent commits: each worker takes the first waiting
// request and whatever else is queued by then (up to max), and hands them to
// flush together. A lone request is flushed at once, with no added wait.
// The sent writer and the hold grouper are batchers.
type batcher[T any] struct {
	ch    chan T
	flush func([]T)
	max   int

	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup
}

func newBatcher[T any](workers, max int, flush func([]T)) *batcher[T] {
	b := &batcher[T]{ch: make(chan T, 1024), flush: flush, max: max}
	for range workers {
		b.wg.Go(b.run)
	}
	return b
}

// submit queues v for a batch; false after close, with v not queued.
func (b *batcher[T]) submit(v T) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return false
	}
	b.ch <- v
	return true
}

// close flushes what is queued and stops the workers.
func (b *batcher[T]) close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.ch)
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *batcher[T]) run() {
	for first := range b.ch {
		batch := []T{first}
	gather:
		for len(batch) < b.max {
			select {
			case v, ok := <-b.ch:
				if !ok {
					break gather
				}
				batch = append(batch, v)
			default:
				break gather
			}
		}
		b.flush(batch)
	}
}
