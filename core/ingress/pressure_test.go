package ingress

import (
	"testing"
	"time"
)

func TestPressure(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	p := NewPressure(20 * time.Millisecond)
	p.now = func() time.Time { return now }
	if p.Busy() {
		t.Fatal("busy before any webhook")
	}
	for range 100 {
		p.observe(5 * time.Millisecond)
	}
	if p.Busy() {
		t.Error("busy while answers take 5 ms")
	}
	p.observe(time.Second) // one slow answer is not pressure
	if p.Busy() {
		t.Error("busy after a single slow answer")
	}
	// Slow answers at a trickle are not load to give way to.
	now = now.Add(5 * time.Second)
	for range 40 {
		p.observe(80 * time.Millisecond)
	}
	if p.Busy() {
		t.Error("busy with 40 slow answers a second")
	}
	for range 100 {
		p.observe(80 * time.Millisecond)
	}
	if !p.Busy() {
		t.Error("not busy while answers take 80 ms")
	}
	now = now.Add(2 * time.Second) // no webhook since: nothing to give way to
	if p.Busy() {
		t.Error("busy two seconds after the last webhook")
	}
	for range 100 {
		p.observe(2 * time.Millisecond)
	}
	if p.Busy() {
		t.Error("still busy after answers became fast again")
	}
	var none *Pressure
	none.observe(time.Second)
	if none.Busy() {
		t.Error("a nil Pressure is busy")
	}
}
