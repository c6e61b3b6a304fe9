package batch

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLoneRequestFlushedAtOnce(t *testing.T) {
	got := make(chan []int, 1)
	b := New(2, 10, func(g []int) { got <- g })
	if !b.Submit(7) {
		t.Fatal("Submit refused before Close")
	}
	select {
	case g := <-got:
		if len(g) != 1 || g[0] != 7 {
			t.Fatalf("group %v, want [7]", g)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a lone request was not flushed")
	}
}

// While a worker is busy, requests queue up and the next flush takes them
// together, up to max; never more than workers flushes run at once.
func TestQueuedRequestsGroupedUpToMax(t *testing.T) {
	release, holding := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var groups [][]int
	var running, most atomic.Int32
	b := New(1, 3, func(g []int) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		if g[0] == 0 {
			close(holding)
			<-release // hold the only worker while the rest queue
		}
		mu.Lock()
		groups = append(groups, g)
		mu.Unlock()
	})
	b.Submit(0)
	<-holding
	for i := 1; i <= 7; i++ {
		b.Submit(i)
	}
	close(release)
	b.Close()
	want := [][]int{{1, 2, 3}, {4, 5, 6}, {7}}
	if len(groups) != 4 {
		t.Fatalf("groups %v, want [0] then %v", groups, want)
	}
	for i, w := range want {
		g := groups[i+1]
		if len(g) != len(w) {
			t.Fatalf("group %d is %v, want %v (all: %v)", i+1, g, w, groups)
		}
		for j := range w {
			if g[j] != w[j] {
				t.Fatalf("group %d is %v, want %v", i+1, g, w)
			}
		}
	}
	if most.Load() != 1 {
		t.Fatalf("%d flushes ran at once with one worker", most.Load())
	}
}

func TestCloseDrainsAndRefuses(t *testing.T) {
	var flushed atomic.Int32
	b := New(2, 4, func(g []int) {
		time.Sleep(time.Millisecond)
		flushed.Add(int32(len(g)))
	})
	for i := range 100 {
		b.Submit(i)
	}
	b.Close()
	if n := flushed.Load(); n != 100 {
		t.Fatalf("Close returned with %d of 100 flushed", n)
	}
	if b.Submit(1) {
		t.Fatal("Submit accepted a request after Close")
	}
}

// An idle Batcher holds no goroutine: services that never close it leak
// nothing.
func TestIdleBatcherHoldsNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	b := New(4, 8, func(g []int) {
		for range g {
			wg.Done()
		}
	})
	wg.Add(1000)
	for i := range 1000 {
		b.Submit(i)
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after the work, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLiveLeavesOutCallersThatGaveUp(t *testing.T) {
	type req struct {
		ctx context.Context
		id  int
	}
	gaveUp, cancel := context.WithCancel(context.Background())
	cancel()
	group := []req{{context.Background(), 1}, {gaveUp, 2}, {context.Background(), 3}, {gaveUp, 4}}
	var told []int
	live := Live(group, func(r req) context.Context { return r.ctx }, func(r req, err error) {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("request %d told %v, want context.Canceled", r.id, err)
		}
		told = append(told, r.id)
	})
	if len(live) != 2 || live[0].id != 1 || live[1].id != 3 {
		t.Errorf("live %v, want requests 1 and 3", live)
	}
	if len(told) != 2 || told[0] != 2 || told[1] != 4 {
		t.Errorf("told %v, want requests 2 and 4", told)
	}
	if got := Live(group[:0], func(r req) context.Context { return r.ctx }, nil); len(got) != 0 {
		t.Errorf("empty group gave %v", got)
	}
}
