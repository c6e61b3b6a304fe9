package server_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ponte-hub/ponte/connectors/shopify/fakeshopify"
	"github.com/ponte-hub/ponte/deploy/testenv"
)

// BenchmarkOpenCarts is the memory figure of cart recovery: PONTE_BENCH_CARTS
// (default 10,000) Shopify checkouts are delivered as signed webhooks, each
// starts its cart's workflow on the Temporal dev server, and once every cart
// waits on its first step's timer (an hour away) the resident memory of
// `ponte serve` (all roles) and of its plugins is read. The target is
// serve under 300 MB.
func BenchmarkOpenCarts(b *testing.B) {
	n := benchEnv("PONTE_BENCH_CARTS", 10000)
	in := newInstallation(b, "cloudapi", "shopify")
	serve := in.start()
	c := newCommerceShop(b, in)
	c.cartSettings(b, time.Hour, time.Hour)

	payloads := make([]any, n)
	for i := range payloads {
		p := fmt.Sprintf("+3937%08d", i)
		payloads[i] = c.shop.CheckoutPayload(c.checkout(p, fmt.Sprintf("Cliente%d", i)))
	}
	start := time.Now()
	failed := c.deliverAll(b, "checkouts/create", payloads, 16, nil)
	c.redeliverUntilStored(b, "checkouts/create", payloads, failed)
	stored := time.Since(start)
	deadline := time.Now().Add(30 * time.Minute)
	pool := in.openPool()
	for countCarts(b, pool, in.tenantID) < n {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d carts started after 30 minutes", countCarts(b, pool, in.tenantID), n)
		}
		time.Sleep(time.Second)
	}
	started := time.Since(start)
	// Let the last workflow tasks finish and the heap settle.
	time.Sleep(time.Duration(benchEnv("PONTE_BENCH_IDLE_SECONDS", 20)) * time.Second)

	const mb = 1 << 20
	serveRSS := rssBytes(b, serve.cmd.Process.Pid)
	shopRSS := rssBytes(b, serve.pluginPID(b, "shopify"))
	waRSS := rssBytes(b, serve.pluginPID(b, "cloudapi"))
	if sent := len(c.graph.Sent()); sent != 0 {
		b.Errorf("%d messages sent while every cart should wait an hour", sent)
	}
	b.ReportMetric(float64(serveRSS)/mb, "serve-MB")
	b.ReportMetric(float64(n)/started.Seconds(), "carts-started/s")
	fmt.Printf("open carts: %d cart workflows waiting on their timers (Temporal dev server, SQLite in memory)\n"+
		"  webhooks stored in %v; all workflows started and recorded after %v (%.0f carts/s)\n"+
		"  RSS: ponte serve %.1f MB (target < 300 MB), shopify plugin %.1f MB, cloudapi plugin %.1f MB\nmachine: %s\n",
		n, stored.Round(time.Millisecond), started.Round(time.Millisecond), float64(n)/started.Seconds(),
		float64(serveRSS)/mb, float64(shopRSS)/mb, float64(waRSS)/mb, machine())
}

// BenchmarkOrderConfirmation is the latency figure of order notifications:
// PONTE_BENCH_RATE (default 100) Shopify orders/create webhooks per second
// for PONTE_BENCH_SECONDS (default 60), open loop, each a new order of a new
// customer; the latency of an order is from the start of its webhook POST
// to the moment the fake Graph API accepted its confirmation template. The
// targets are p50 under 300 ms and p99 under 1 s.
func BenchmarkOrderConfirmation(b *testing.B) {
	rate := benchEnv("PONTE_BENCH_RATE", 100)
	seconds := benchEnv("PONTE_BENCH_SECONDS", 60)
	n := rate * seconds
	in := newInstallation(b, "cloudapi", "shopify")
	serve := in.start()
	c := newCommerceShop(b, in)
	c.orderSettings(b)

	phone := func(i int) string { return fmt.Sprintf("+3938%08d", i) }
	payloads := make([]any, n)
	for i := range payloads {
		payloads[i] = c.shop.OrderPayload(c.shop.PutOrder(fakeshopify.Order{
			Phone: phone(i), Email: fmt.Sprintf("b%d@example.com", i), FinancialStatus: "paid",
			Customer:  &fakeshopify.Customer{FirstName: fmt.Sprintf("Cliente%d", i), Phone: phone(i)},
			LineItems: []fakeshopify.LineItem{{Title: "Mug", Quantity: 1, Price: "12.00"}},
		}))
	}

	sentAt := make([]time.Time, n)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		refused int
	)
	busy0, total0 := testenv.CPUTicks(0)
	steal0, _ := testenv.CPUSteal()
	serve0, _ := testenv.CPUTicks(serve.cmd.Process.Pid)
	programs0 := testenv.CPUByProgram()
	start := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for i := range n {
		<-tick.C
		sentAt[i] = time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, err := c.shop.Deliver(context.Background(), "orders/create", payloads[i])
			if err != nil || status != http.StatusOK {
				mu.Lock()
				refused++
				mu.Unlock()
			}
		}()
	}
	tick.Stop()
	wg.Wait()
	offered := time.Since(start)

	deadline := time.Now().Add(10 * time.Minute)
	for len(c.graph.Sent()) < n && !time.Now().After(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	drained := time.Since(start)
	busy1, total1 := testenv.CPUTicks(0)
	steal1, _ := testenv.CPUSteal()
	serve1, _ := testenv.CPUTicks(serve.cmd.Process.Pid)
	perOrder := cpuByProgram(programs0, n)

	latencies := make([]time.Duration, 0, n)
	index := map[string]int{}
	for i := range n {
		index[phone(i)[1:]] = i
	}
	for _, m := range c.graph.Sent() {
		if i, ok := index[m.To]; ok && m.Template == "order_confirmation" {
			latencies = append(latencies, m.At.Sub(sentAt[i]))
		}
	}
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))]
	}
	b.ReportMetric(float64(pct(0.50).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(pct(0.99).Milliseconds()), "p99-ms")
	fmt.Printf("order confirmations: %d orders/create webhooks at %d/s for %ds (offered in %v, %d refused)\n"+
		"  %d confirmations at the fake Graph API after %v\n"+
		"  webhook -> confirmation accepted by the Graph API: p50 %v, p90 %v, p99 %v, max %v (targets p50 < 300 ms, p99 < 1 s)\n"+
		"  machine CPU %.0f%% busy, hypervisor steal %.0f%%, ponte serve %.0f%% of one core\n  CPU per order by program (the test binary holds the fakes): %s\nmachine: %s\n",
		n, rate, seconds, offered.Round(time.Millisecond), refused, len(latencies), drained.Round(time.Millisecond),
		pct(0.5).Round(time.Millisecond), pct(0.9).Round(time.Millisecond), pct(0.99).Round(time.Millisecond),
		pct(1).Round(time.Millisecond),
		100*float64(busy1-busy0)/float64(max(total1-total0, 1)), 100*float64(steal1-steal0)/float64(max(total1-total0, 1)),
		100*float64(serve1-serve0)/100/drained.Seconds(), perOrder, machine())
	if len(latencies) != n {
		b.Errorf("%d of %d orders confirmed", len(latencies), n)
	}
}

// cpuByProgram is what each program on the machine spent per unit of work
// since the CPUByProgram reading before, for n units, largest first.
func cpuByProgram(before map[string]int64, n int) string {
	var parts []string
	for _, p := range testenv.CPUDelta(before, testenv.CPUByProgram()) {
		if d := p.Per(n); d >= 10*time.Microsecond {
			parts = append(parts, fmt.Sprintf("%s %v", p.Program, d.Round(10*time.Microsecond)))
		}
	}
	return strings.Join(parts, ", ")
}
