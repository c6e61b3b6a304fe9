package ingress

import (
	"sync"
	"time"
)

// DefaultBusyAbove is the answer time of webhooks above which ingress counts
// as busy (see [Pressure]): a node with CPU to spare answers in a few
// milliseconds (the plugin's check and one commit), and on the 2-core
// reference machine 10 ms rather than 20 took the p99 of 2,000 inbound
// messages a second from 165 to 139 ms (BenchmarkInboundMessages).
const DefaultBusyAbove = 10 * time.Millisecond

// pressureWeight is the weight of one answer in the moving average: at a
// thousand webhooks a second the average follows a change within tens of
// milliseconds, and one slow answer alone does not make ingress busy.
const pressureWeight = 0.05

// pressureMinRate: ingress counts as busy only while it answers at least
// this many webhooks a second. A few slow answers (a plugin's first call, a
// quiet hour's lone webhook) are not load the dispatcher should wait for.
const pressureMinRate = 100

// Pressure tells work that can wait (the dispatcher applying stored events)
// when webhooks are being answered slowly, so that it gives way to them: a
// provider waits for every answer and retries, or disables the endpoint, when
// answers are late, while an event already stored is safe and can be applied
// a little later. It keeps a moving average of the answer times of
// [Handler]. A nil *Pressure is never busy.
type Pressure struct {
	busyAbove time.Duration
	now       func() time.Time

	mu  sync.Mutex
	avg float64 // answer time, seconds
	// Answers counted per second of the clock: second is the current one,
	// n its count, prev the count of the second before it.
	second  int64
	n, prev int
}

// NewPressure returns a Pressure that is busy while the moving average of
// answer times exceeds busyAbove (DefaultBusyAbove when 0).
func NewPressure(busyAbove time.Duration) *Pressure {
	if busyAbove <= 0 {
		busyAbove = DefaultBusyAbove
	}
	return &Pressure{busyAbove: busyAbove, now: time.Now}
}

// observe records one answer time.
func (p *Pressure) observe(d time.Duration) {
	if p == nil {
		return
	}
	// An answer counts as at most four times the threshold: one stalled
	// request (a plugin restarting) must not make ingress look busy.
	x := min(d, 4*p.busyAbove).Seconds()
	p.mu.Lock()
	p.avg += pressureWeight * (x - p.avg)
	p.tick(p.now().Unix())
	p.n++
	p.mu.Unlock()
}

// tick moves the per-second counts to second sec. Guarded by mu.
func (p *Pressure) tick(sec int64) {
	switch {
	case sec == p.second:
	case sec == p.second+1:
		p.second, p.prev, p.n = sec, p.n, 0
	default:
		p.second, p.prev, p.n = sec, 0, 0
	}
}

// Busy reports whether webhooks are answered slowly now: the moving average
// of the recent answer times exceeds the threshold while webhooks arrive at
// 100 a second or more (counted over the current and the previous second).
func (p *Pressure) Busy() bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tick(p.now().Unix())
	return p.n+p.prev >= pressureMinRate && p.avg > p.busyAbove.Seconds()
}
