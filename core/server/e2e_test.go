package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
)

// stripeEvent returns a Stripe event body and its Stripe-Signature header,
// signed with stripe-go's own test helper, as Stripe would send it.
func stripeEvent(t testing.TB, secret, id, eventType string, object map[string]any) ([]byte, string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"id":          id,
		"object":      "event",
		"api_version": stripe.APIVersion,
		"created":     time.Now().Unix(),
		"type":        eventType,
		"livemode":    false,
		"data":        map[string]any{"object": object},
	})
	if err != nil {
		t.Fatal(err)
	}
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret})
	return body, signed.Header
}

type paymentLink struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	URL        string `json:"url"`
	AmountPaid *int64 `json:"amount_paid"`
}

func (in *installation) waitLinkStatus(id, want string, within time.Duration) paymentLink {
	in.t.Helper()
	var link paymentLink
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if in.call("GET", "/v1/payment-links/"+id, nil, &link) == http.StatusOK && link.Status == want {
			return link
		}
		time.Sleep(200 * time.Millisecond)
	}
	in.t.Fatalf("payment link %s: status %q, want %q after %s\n%s", id, link.Status, want, within, in.logs())
	return link
}

// A payment link whose workflow is waiting when `ponte serve` is killed with
// SIGKILL is still completed by the payment webhook after a restart: the
// workflow lives in Temporal, the link in Postgres, and nothing of it in the
// process that died.
func TestIntegrationPaymentLinkSurvivesServeKill(t *testing.T) {
	in := newInstallation(t)
	serve := in.start()

	const secret = "whsec_e2e_survives_kill"
	connID, webhookURL := in.connectStripe(secret)
	if want := in.url("/hooks/" + connID); webhookURL != want {
		t.Errorf("webhook_url = %q, want %q", webhookURL, want)
	}

	var link paymentLink
	if status := in.call("POST", "/v1/payment-links", map[string]any{
		"connection_id": connID, "amount": 4900, "currency": "eur", "product_name": "Order #1001",
	}, &link, "Idempotency-Key", "order-1001"); status != http.StatusCreated && status != http.StatusOK && status != http.StatusAccepted {
		t.Fatalf("creating the payment link: status %d", status)
	}
	open := in.waitLinkStatus(link.ID, "open", 30*time.Second)
	if open.URL == "" {
		t.Errorf("open link has no url")
	}

	serve.kill()
	in.start()

	body, sig := stripeEvent(t, secret, "evt_e2e_paid_"+link.ID, "checkout.session.completed", map[string]any{
		"id": "cs_test_e2e", "object": "checkout.session", "payment_status": "paid", "status": "complete",
		"amount_total": 4900, "currency": "eur",
		"metadata": map[string]string{"ponte_payment_link": link.ID},
	})
	for i := 0; i < 2; i++ { // Stripe redelivers; the second delivery must change nothing
		status, err := postWebhook(http.DefaultClient, webhookURL, map[string]string{
			"Stripe-Signature": sig, "Content-Type": "application/json",
		}, body)
		if err != nil || status != http.StatusOK {
			t.Fatalf("delivery %d: status %d, err %v\n%s", i, status, err, in.logs())
		}
	}
	paid := in.waitLinkStatus(link.ID, "paid", 30*time.Second)
	if paid.AmountPaid == nil || *paid.AmountPaid != 4900 {
		t.Errorf("amount_paid = %v, want 4900", paid.AmountPaid)
	}

	var stored int
	conn, err := pgx.Connect(context.Background(), in.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(context.Background(),
		`SELECT count(*) FROM events WHERE connection_id = $1`, connID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != 1 {
		t.Errorf("stored events = %d, want 1 (the redelivery must not be stored again)", stored)
	}
}

// Killing the Stripe plugin with SIGKILL while webhooks pour in: the host
// restarts it, providers get 503 (and retry) during the gap, and every
// delivery that was answered 200 is in the store exactly once.
func TestIntegrationPluginKillUnderLoad(t *testing.T) {
	in := newInstallation(t)
	serve := in.start()
	const secret = "whsec_e2e_plugin_kill"
	connID, webhookURL := in.connectStripe(secret)

	const senders = 8
	const perSender = 300
	var (
		mu       sync.Mutex
		accepted = map[string]int{} // event id -> 200 answers
		sent     atomic.Int64
		rejected atomic.Int64
	)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}, Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perSender; i++ {
				id := fmt.Sprintf("evt_load_%d_%d", s, i)
				body, sig := stripeEvent(t, secret, id, "payment_intent.succeeded", map[string]any{
					"id": "pi_" + id, "object": "payment_intent", "amount": 100, "currency": "eur",
					"status": "succeeded", "metadata": map[string]string{},
				})
				// Like a provider, retry until a 200, at most a few times.
				for attempt := 0; attempt < 50; attempt++ {
					sent.Add(1)
					status, err := postWebhook(client, webhookURL, map[string]string{"Stripe-Signature": sig}, body)
					if err == nil && status == http.StatusOK {
						mu.Lock()
						accepted[id]++
						mu.Unlock()
						break
					}
					rejected.Add(1)
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}

	// Kill the plugin once the load is running.
	deadline := time.Now().Add(20 * time.Second)
	for sent.Load() < senders*perSender/4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	killed := serve.pluginPID(t, "stripe")
	if killed == 0 {
		t.Fatal("no stripe plugin process")
	}
	if err := syscall.Kill(killed, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	// The plugin came back: a new process.
	if after := serve.pluginPID(t, "stripe"); after == 0 || after == killed {
		t.Errorf("stripe plugin pid after kill = %d (killed %d), want a new one", after, killed)
	}

	conn, err := pgx.Connect(context.Background(), in.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(),
		`SELECT dedupe_key, count(*) FROM events WHERE connection_id = $1 GROUP BY dedupe_key`, connID)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	for rows.Next() {
		var key string
		var n int
		if err := rows.Scan(&key, &n); err != nil {
			t.Fatal(err)
		}
		stored[key] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for id := range accepted {
		if stored[id] != 1 {
			t.Errorf("event %s answered 200 but stored %d times", id, stored[id])
		}
	}
	for id, n := range stored {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	if len(accepted) != senders*perSender {
		t.Errorf("accepted %d distinct events, want %d (every sender retries until 200)", len(accepted), senders*perSender)
	}
	t.Logf("requests %d, non-200 answers during the plugin restart %d, stored %d", sent.Load(), rejected.Load(), len(stored))
}
