package messaging

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ponte-hub/ponte/connectors/cloudapi/fakegraph"
)

// TestIntegrationTwoProcessesShareANumber: two messaging services, as two
// `ponte serve` replicas run them, send from one number at Meta's default
// tier (80 msg/s) through the real plugin to the fake Graph API, which
// enforces the tier with 130429. Their pacers draw from the number's one
// schedule in Postgres, so together they keep to the tier: zero 130429.
// With a bucket each they sent at twice the tier, and the fake answered
// 130429 157 times for the 320 sends (each then retried after its wait).
func TestIntegrationTwoProcessesShareANumber(t *testing.T) {
	t.Parallel()
	const tier, each = 80, 160
	ctx := context.Background()
	r := newCloudRig(t, tier, 40)
	r.fake.SetStatusOptions(fakegraph.StatusOptions{Disabled: true})
	r.addTemplate(t, "spring_sale", "marketing", "Spring sale: 20% off this week", 0)

	phones := make([]string, 2*each)
	for i := range phones {
		phones[i] = fmt.Sprintf("+3936%08d", i)
	}
	r.optedIn(t, phones)
	other := r.anotherProcess(t)
	t.Cleanup(r.svc.Close)

	var wg sync.WaitGroup
	errs := make(chan error, 2*each)
	start := time.Now()
	for i, phone := range phones {
		svc := r.svc
		if i%2 == 1 {
			svc = other
		}
		wg.Go(func() {
			m, err := svc.Send(ctx, SendRequest{TenantID: r.tenantID, ConnectionID: r.connID, To: phone,
				Kind: KindTemplate, Template: &Template{Name: "spring_sale", Language: "it"},
				IdempotencyKey: "share:" + phone})
			if err == nil && m.Status != StatusSent {
				err = fmt.Errorf("send to %s: status %s (%s %s)", phone, m.Status, m.StatusReason, m.ErrorCode)
			}
			errs <- err
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			if failed < 3 {
				t.Error(err)
			}
			failed++
		}
	}
	if n := r.fake.ErrorCount(130429); n != 0 {
		t.Errorf("the fake answered 130429 %d times: the two processes sent over the number's %d msg/s", n, tier)
	}
	if got := len(r.fake.Sent()); got != 2*each {
		t.Errorf("the fake accepted %d sends, want %d", got, 2*each)
	}
	// 320 sends at 80/s, a burst of 4 at once: at least 3.9 s.
	if least := time.Duration(2*each-tier/20) * time.Second / tier; elapsed < least {
		t.Errorf("%d sends from two processes took %v, under the %v the tier allows", 2*each, elapsed, least)
	}
	t.Logf("%d sends from two processes in %v, %d failed", 2*each, elapsed.Round(time.Millisecond), failed)
}
