package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mdp/qrterminal/v3"
	"github.com/spf13/cobra"
)

// defaultAPIURL is where `ponte serve` and `ponte dev` listen by default.
const defaultAPIURL = "http://127.0.0.1:8080"

func newNumbersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "numbers",
		Short: "Pair and list the WhatsApp numbers a tenant sends from (through the API)",
		Long: "Talks to a running Ponte's API with a tenant API key (write scope to pair).\n" +
			"The API is --api or $PONTE_API_URL (default " + defaultAPIURL + "), the key --key or $PONTE_API_KEY.",
	}
	cmd.AddCommand(newNumbersPairCmd(), newNumbersListCmd())
	return cmd
}

// apiFlags are the --api and --key flags of the commands that use the API.
type apiFlags struct{ url, key string }

func (f *apiFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.url, "api", "", "Ponte API base URL (default $PONTE_API_URL, else "+defaultAPIURL+")")
	cmd.Flags().StringVar(&f.key, "key", "", "tenant API key (default $PONTE_API_KEY)")
}

func (f *apiFlags) client() (*apiClient, error) {
	base := f.url
	if base == "" {
		base = os.Getenv("PONTE_API_URL")
	}
	if base == "" {
		base = defaultAPIURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--api %q is not an http(s) URL", base)
	}
	key := f.key
	if key == "" {
		key = os.Getenv("PONTE_API_KEY")
	}
	if key == "" {
		return nil, errors.New("no API key: pass --key or set PONTE_API_KEY (create one with `ponte admin key create`)")
	}
	// No client timeout: the pairing stream lasts minutes. Requests are
	// bounded by the command's context (Ctrl-C) instead.
	return &apiClient{base: strings.TrimRight(base, "/"), key: key, http: &http.Client{}}, nil
}

// apiClient calls Ponte's REST API.
type apiClient struct {
	base, key string
	http      *http.Client
}

// apiError is a problem+json answer of the API.
type apiError struct {
	Status     int
	Detail     string
	Errors     []struct{ Location, Message string }
	RetryAfter time.Duration
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	for _, d := range e.Errors {
		msg += fmt.Sprintf("; %s: %s", strings.TrimPrefix(d.Location, "body."), d.Message)
	}
	return msg
}

func (c *apiClient) request(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encoding the request: %w", err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		e := &apiError{Status: resp.StatusCode}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(e)
		if secs, err := time.ParseDuration(resp.Header.Get("Retry-After") + "s"); err == nil {
			e.RetryAfter = secs
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, e)
	}
	return resp, nil
}

// call sends a JSON request and decodes the JSON answer into out (unless nil).
func (c *apiClient) call(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// cliNumber is the part of the API's number the commands show.
type cliNumber struct {
	ID           string `json:"id"`
	Kind         string `json:"kind"`
	Label        string `json:"label"`
	ConnectionID string `json:"connection_id"`
	Session      *struct {
		State    string `json:"state"`
		Reason   string `json:"reason"`
		Phone    string `json:"phone"`
		PushName string `json:"push_name"`
	} `json:"session"`
}

func newNumbersPairCmd() *cobra.Command {
	var (
		api                              apiFlags
		label, deviceName, phone, number string
	)
	cmd := &cobra.Command{
		Use:   "pair --label LABEL [--phone +E164]",
		Short: "Add a linked-device number and pair it, showing the QR code in the terminal",
		Long: "Creates a linked-device number and shows each pairing QR code as text until the phone scans one:\n" +
			"on the phone, WhatsApp > Settings > Linked devices > Link a device. With --phone, prints a code\n" +
			"to type on that phone instead (Link with phone number instead). --number pairs an existing\n" +
			"number again, e.g. after pairing timed out or the phone logged the device out.\n" +
			"Exits 0 once connected, non-zero with the reason when pairing ends.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (label == "") == (number == "") {
				return errors.New("give either --label (a new number) or --number (pair an existing one)")
			}
			c, err := api.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			p := &pairing{c: c, out: cmd.OutOrStdout(), notes: cmd.ErrOrStderr(), phone: phone}
			if number == "" {
				var n cliNumber
				if err := c.call(ctx, http.MethodPost, "/v1/numbers",
					map[string]any{"kind": "linked_device", "label": label, "device_name": deviceName}, &n); err != nil {
					return fmt.Errorf("creating the number: %w", err)
				}
				fmt.Fprintf(p.notes, "Created number %s (%s). Waiting for its session to start...\n", n.ID, n.Label)
				p.id = n.ID
			} else {
				p.id = number
				if phone == "" {
					// A new round of QR codes; with --phone the code is
					// asked for once the stream shows the session.
					if err := p.startPairing(ctx, nil); err != nil {
						return err
					}
				}
			}
			return p.follow(ctx)
		},
	}
	api.register(cmd)
	cmd.Flags().StringVar(&label, "label", "", "label of the new number, e.g. Support")
	cmd.Flags().StringVar(&deviceName, "device-name", "", "name the phone shows for the linked device (default: the connector's)")
	cmd.Flags().StringVar(&phone, "phone", "", "pair by phone code with this number (E.164, e.g. +393331234567) instead of a QR code")
	cmd.Flags().StringVar(&number, "number", "", "pair this existing number (num_...) again instead of creating one")
	return cmd
}

// pairing follows one number's pairing on the terminal.
type pairing struct {
	c          *apiClient
	out, notes io.Writer
	id, phone  string

	state, reason string
	codeShown     string // the phone pairing code last printed
	codeAsked     bool
}

// maxReconnects bounds how often a broken pairing stream is reopened
// (a server restart, a proxy timeout) before giving up.
const maxReconnects = 5

// follow reads the pairing stream until the number is connected or pairing
// ends, reopening it when the connection breaks.
func (p *pairing) follow(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		done, err := p.followOnce(ctx)
		if done || ctx.Err() != nil {
			return err
		}
		var ae *apiError
		if errors.As(err, &ae) || attempt >= maxReconnects {
			return err
		}
		fmt.Fprintf(p.notes, "The stream broke (%v); reconnecting...\n", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * time.Second):
		}
	}
}

// followOnce reads one stream; done reports that pairing is over (err then
// says how it ended, nil when connected).
func (p *pairing) followOnce(ctx context.Context) (done bool, err error) {
	resp, err := p.c.request(ctx, http.MethodGet, "/v1/numbers/"+url.PathEscape(p.id)+"/qr", nil)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusConflict {
			// Connected meanwhile (or not a linked device): say which.
			var n cliNumber
			if gerr := p.c.call(ctx, http.MethodGet, "/v1/numbers/"+url.PathEscape(p.id), nil, &n); gerr == nil &&
				n.Session != nil && n.Session.State == "connected" {
				p.connected(n.Session.Phone, n.Session.PushName)
				return true, nil
			}
		}
		return false, err
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	var name, data string
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			if p.ended() {
				return true, p.endError()
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return false, fmt.Errorf("reading the pairing stream: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if name == "" {
				continue
			}
			if done, err := p.handle(ctx, name, data); done || err != nil {
				return true, err
			}
			name, data = "", ""
		case strings.HasPrefix(line, "event:"):
			name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data = strings.TrimSpace(strings.TrimPrefix(line, "data:"))
		}
	}
}

func (p *pairing) ended() bool {
	switch p.state {
	case "logged_out", "banned", "temporarily_banned":
		return true
	}
	return false
}

func (p *pairing) endError() error {
	msg := "pairing ended: " + p.state
	if p.reason != "" {
		msg += " (" + p.reason + ")"
	}
	return fmt.Errorf("%s; try again with `ponte numbers pair --number %s`", msg, p.id)
}

// handle acts on one event; done reports the end of pairing.
func (p *pairing) handle(ctx context.Context, name, data string) (done bool, err error) {
	switch name {
	case "state":
		var ev struct{ State, Reason string }
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return false, nil // not ours to judge; the next event will tell
		}
		p.state, p.reason = ev.State, ev.Reason
		note := "Session: " + ev.State
		if ev.Reason != "" {
			note += " (" + ev.Reason + ")"
		}
		fmt.Fprintln(p.notes, note)
		if p.phone != "" && !p.codeAsked && ev.State == "pairing" {
			if err := p.startPairing(ctx, &p.phone); err != nil {
				return true, err
			}
		}
	case "qr":
		var ev struct {
			Code      string     `json:"code"`
			ExpiresAt *time.Time `json:"expires_at"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil || ev.Code == "" {
			return false, nil
		}
		if p.phone != "" {
			if !p.codeAsked {
				if err := p.startPairing(ctx, &p.phone); err != nil {
					return true, err
				}
			}
			return false, nil // pairing by code: the QR is not for us
		}
		fmt.Fprintln(p.out, "\nScan this code with WhatsApp on the phone: Settings > Linked devices > Link a device")
		if ev.ExpiresAt != nil {
			fmt.Fprintf(p.out, "(a new one comes at %s)\n", ev.ExpiresAt.Local().Format("15:04:05"))
		}
		qrterminal.GenerateHalfBlock(ev.Code, qrterminal.L, p.out)
	case "pairing_code":
		var ev struct{ Code string }
		if err := json.Unmarshal([]byte(data), &ev); err == nil && ev.Code != "" {
			p.showCode(ev.Code)
		}
	case "connected":
		var ev struct {
			Phone    string `json:"phone"`
			PushName string `json:"push_name"`
		}
		_ = json.Unmarshal([]byte(data), &ev)
		p.connected(ev.Phone, ev.PushName)
		return true, nil
	}
	// A state that ends pairing is acted on when the server ends the
	// stream after it: a stream opened on a session that had already ended
	// stays open (and reports it) while pairing is being restarted.
	return false, nil
}

func (p *pairing) connected(phone, name string) {
	who := phone
	if name != "" {
		who += " (" + name + ")"
	}
	fmt.Fprintf(p.out, "Connected: %s\n", strings.TrimSpace(who))
}

func (p *pairing) showCode(code string) {
	if code == p.codeShown {
		return
	}
	p.codeShown = code
	fmt.Fprintf(p.out, "On the phone: WhatsApp > Settings > Linked devices > Link a device > Link with phone number instead,\nthen enter this code: %s\n", code)
}

// startPairingWait bounds how long a pairing request is retried while the
// session starts (the API answers 503 with Retry-After until it is held).
const startPairingWait = 60 * time.Second

// startPairing asks for a new round of QR codes (phone nil) or a phone
// pairing code, retrying while the session is starting.
func (p *pairing) startPairing(ctx context.Context, phone *string) error {
	body := map[string]any{}
	if phone != nil {
		body["phone"] = *phone
		p.codeAsked = true
	}
	deadline := time.Now().Add(startPairingWait)
	for {
		var out struct {
			PairingCode string `json:"pairing_code"`
		}
		err := p.c.call(ctx, http.MethodPost, "/v1/numbers/"+url.PathEscape(p.id)+"/pairing", body, &out)
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			wait := max(ae.RetryAfter, time.Second)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("starting pairing: %w", err)
		}
		if out.PairingCode != "" {
			p.showCode(out.PairingCode)
		}
		return nil
	}
}

func newNumbersListCmd() *cobra.Command {
	var api apiFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the tenant's numbers with their session state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := api.client()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tKIND\tLABEL\tSTATE\tPHONE\tCONNECTION")
			cursor := ""
			for {
				var page struct {
					Data       []cliNumber `json:"data"`
					NextCursor string      `json:"next_cursor"`
				}
				q := url.Values{"limit": {"200"}}
				if cursor != "" {
					q.Set("cursor", cursor)
				}
				if err := c.call(cmd.Context(), http.MethodGet, "/v1/numbers?"+q.Encode(), nil, &page); err != nil {
					return fmt.Errorf("listing numbers: %w", err)
				}
				for _, n := range page.Data {
					state, phone := "-", "-"
					if s := n.Session; s != nil {
						state = s.State
						if s.Reason != "" {
							state += " (" + s.Reason + ")"
						}
						if s.Phone != "" {
							phone = s.Phone
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.ID, n.Kind, n.Label, state, phone, n.ConnectionID)
				}
				if page.NextCursor == "" {
					break
				}
				cursor = page.NextCursor
			}
			return tw.Flush()
		},
	}
	api.register(cmd)
	return cmd
}
