// Package cloudapi is Ponte's WhatsApp Cloud API connector: it verifies and
// normalizes the webhooks Meta sends for a WhatsApp Business phone number
// (inbound messages, message statuses, template status updates), answers
// Meta's webhook verification handshake, and sends messages and manages
// message templates through the Graph API.
//
// The connector is built on plugins/sdk only and runs as its own plugin
// process (see cmd/ponte-connector-cloudapi). One process serves every Cloud
// API connection of every tenant, so it keeps no per-connection state: every
// call reads what it needs from the connection's config, and all calls share
// one pooled HTTP transport sized for a number at the 1,000 msg/s tier.
//
// # Configuration
//
//   - phone_number_id, waba_id (required): the business phone number's id and
//     its WhatsApp Business Account id, from the app's WhatsApp > API Setup.
//   - access_token (secret, required): a system user access token with the
//     whatsapp_business_messaging and whatsapp_business_management permissions.
//   - app_secret (secret, required): the Meta app's secret, with which Meta signs
//     every webhook (X-Hub-Signature-256).
//   - verify_token (secret, required): the string typed into the app's webhook
//     settings, echoed by Meta in the verification GET.
//   - graph_api_version (default "v21.0"), throughput_tier (80 or 1000, default
//     80; read by Ponte's messaging core to pace sends, the connector itself
//     never paces), api_base (default https://graph.facebook.com; tests point
//     it at connectors/cloudapi/fakegraph).
//
// # Events
//
// [EventMessageReceived] (payload [InboundMessage]), [EventMessageStatus]
// (payload [MessageStatus]) and [EventTemplateStatus] (payload
// [TemplateStatus]). One webhook delivery may batch several entries, changes,
// messages and statuses; each becomes its own event. Phone numbers in events
// are E.164 with a leading "+", although Meta sends digits only.
//
// # Actions
//
// send_text, send_media, send_template, send_interactive, send_reaction,
// mark_read, list_templates, create_template, delete_template and
// download_media (received media, see [MaxDownloadBytes]); their JSON
// Schemas are in schemas/ and in the manifest. Every send carries the caller's ledger_id
// to Meta as biz_opaque_callback_data, so the status webhooks of a message
// name the Ponte ledger row they belong to. Graph errors become typed
// *sdk.Error values (see [MapGraphError]).
package cloudapi

import (
	"embed"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
	"github.com/ponte-hub/ponte/plugins/sdk/whatsapp"
)

// Version is the connector's own version, reported in its manifest.
const Version = "0.1.0"

// Event types this connector emits.
const (
	// EventMessageReceived: a WhatsApp user sent a message to the number.
	EventMessageReceived = whatsapp.EventMessageReceived
	// EventMessageStatus: a message sent by the number changed status.
	EventMessageStatus = whatsapp.EventMessageStatus
	// EventTemplateStatus: Meta reviewed, paused or disabled a template.
	EventTemplateStatus = "template.status_updated"
)

// Action names this connector offers.
const (
	ActionSendText        = "send_text"
	ActionSendMedia       = "send_media"
	ActionSendTemplate    = "send_template"
	ActionSendInteractive = "send_interactive"
	ActionSendReaction    = "send_reaction"
	ActionMarkRead        = "mark_read"
	ActionListTemplates   = "list_templates"
	ActionCreateTemplate  = "create_template"
	ActionDeleteTemplate  = "delete_template"
	ActionDownloadMedia   = "download_media"
)

// Correlation keys this connector sets on its events (only when non-empty),
// the WhatsApp connectors' shared ones.
const (
	CorrelationPhoneNumberID = whatsapp.CorrelationPhoneNumberID
	CorrelationWAID          = whatsapp.CorrelationWAID
	CorrelationContactPhone  = whatsapp.CorrelationContactPhone
	CorrelationLedgerID      = whatsapp.CorrelationLedgerID
	CorrelationWAMID         = whatsapp.CorrelationWAMID
)

// Defaults of the connection config.
const (
	DefaultGraphAPIVersion = "v21.0"
	DefaultAPIBase         = "https://graph.facebook.com"
	DefaultThroughputTier  = 80
)

// Throughput tiers Meta assigns to a business phone number, in messages per
// second.
var throughputTiers = []int{80, 1000}

// requestTimeout bounds one Graph API call. A send that takes longer is
// reported Retryable; the messaging core reconciles it from the status
// webhook that carries its ledger id rather than sending it again blindly.
const requestTimeout = 30 * time.Second

var (
	idPattern      = regexp.MustCompile(`^[0-9]{1,32}$`)
	versionPattern = regexp.MustCompile(`^v[0-9]{1,3}\.[0-9]{1,2}$`)
)

//go:embed schemas/*.json
var schemaFiles embed.FS

// Interface assertions: what the connector promises the SDK.
var (
	_ sdk.Connector      = (*Connector)(nil)
	_ sdk.WebhookHandler = (*Connector)(nil)
	_ sdk.Handshaker     = (*Connector)(nil)
	_ sdk.ActionInvoker  = (*Connector)(nil)
)

// Connector is the WhatsApp Cloud API connector. It is safe for concurrent use
// by any number of connections.
type Connector struct {
	log      *slog.Logger
	client   *http.Client
	manifest sdk.Manifest
}

// New builds the connector. It is the [sdk.Factory] handed to sdk.Serve; the
// host is not needed because the connector keeps no state.
func New(_ sdk.Host) (sdk.Connector, error) {
	return NewConnector(slog.Default(), nil)
}

// NewConnector builds the connector with a logger and an HTTP client; a nil
// client gets [NewHTTPClient]'s. It is exported for tests and benchmarks that
// run the connector in-process.
func NewConnector(log *slog.Logger, client *http.Client) (*Connector, error) {
	m, err := buildManifest()
	if err != nil {
		return nil, err
	}
	if client == nil {
		client = NewHTTPClient()
	}
	return &Connector{log: log.With("connector", "cloudapi"), client: client, manifest: m}, nil
}

// NewHTTPClient returns the HTTP client the connector calls the Graph API
// with. A number at the top tier sends 1,000 messages a second; with Graph
// answering in 100-300 ms that is a few hundred requests in flight, so the
// pool keeps that many idle connections to the one host instead of Go's
// default of two (which would open and close a TLS connection per send).
// HTTP/2 is attempted, as graph.facebook.com speaks it and multiplexes.
func NewHTTPClient() *http.Client {
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          2048,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: requestTimeout,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: t, Timeout: requestTimeout}
}

// Manifest describes the connector.
func (c *Connector) Manifest() sdk.Manifest { return c.manifest }

// actionDescriptions lists the actions in manifest order.
var actionDescriptions = []sdk.ActionSpec{
	{Name: ActionSendText, Description: "Sends a text message (allowed only inside the 24-hour customer service window). ledger_id is sent as biz_opaque_callback_data and comes back on every status webhook."},
	{Name: ActionSendMedia, Description: "Sends an image, audio, video, document or sticker by public HTTPS link (inside the 24-hour window)."},
	{Name: ActionSendTemplate, Description: "Sends an approved message template with Meta's components array (header, body and button parameters). Templates may be sent outside the 24-hour window."},
	{Name: ActionSendInteractive, Description: "Sends reply buttons (1-3) or a list (1-10 rows in all), inside the 24-hour window."},
	{Name: ActionSendReaction, Description: "Reacts with one emoji to a message the customer sent (an empty emoji removes the reaction), inside the 24-hour window. Meta sends only the sent status webhook for a reaction; one on a message it cannot react to (older than 30 days, deleted, a reaction) fails by status webhook with 131009."},
	{Name: ActionMarkRead, Description: "Marks a received message (and the ones before it) as read, showing blue ticks to the customer."},
	{Name: ActionListTemplates, Description: "Lists the WhatsApp Business Account's message templates, one page at a time."},
	{Name: ActionCreateTemplate, Description: "Submits a new message template for Meta's review; it starts PENDING."},
	{Name: ActionDeleteTemplate, Description: "Deletes a message template: every language of the name, or only the one with the given id."},
	{Name: ActionDownloadMedia, Description: "Downloads the file of a received image, audio, video, document or sticker by its media id (at most 16 MB), checked against its SHA-256. NotFound when Meta no longer has it."},
}

func buildManifest() (sdk.Manifest, error) {
	m := sdk.Manifest{
		Name:        "cloudapi",
		Version:     Version,
		DisplayName: "WhatsApp Cloud API",
		Description: "A WhatsApp Business phone number on Meta's Cloud API: inbound messages, delivery statuses, templates, and sending text, media, templates, interactive messages and reactions.",
		Webhooks:    true,
		Config: []sdk.ConfigField{
			{Name: "phone_number_id", Type: sdk.FieldString, Required: true, Pattern: idPattern.String(),
				Description: "Phone number ID of the business number (WhatsApp > API Setup in the Meta app dashboard), not the phone number itself."},
			{Name: "waba_id", Type: sdk.FieldString, Required: true, Pattern: idPattern.String(),
				Description: "WhatsApp Business Account ID that owns the number and its message templates."},
			{Name: "access_token", Type: sdk.FieldString, Required: true, Secret: true,
				Description: "System user access token with the whatsapp_business_messaging and whatsapp_business_management permissions."},
			{Name: "app_secret", Type: sdk.FieldString, Required: true, Secret: true,
				Description: "App secret of the Meta app (App settings > Basic); Meta signs every webhook with it."},
			{Name: "verify_token", Type: sdk.FieldString, Required: true, Secret: true,
				Description: "Any string you choose and also type into the app's webhook settings (Verify token); Meta echoes it when it verifies the webhook URL."},
			{Name: "graph_api_version", Type: sdk.FieldString, Default: DefaultGraphAPIVersion, Pattern: versionPattern.String(),
				Description: "Graph API version to call, e.g. v21.0."},
			{Name: "throughput_tier", Type: sdk.FieldInteger, Default: float64(DefaultThroughputTier), // float64: what the manifest is after a trip through JSON
				Description: "Messages per second Meta allows this number: 80 (the default) or 1000 once Meta has upgraded it. Ponte paces sends to it."},
			{Name: "api_base", Type: sdk.FieldString, Default: DefaultAPIBase, Pattern: `^https?://[^\s]+$`,
				Description: "Base URL of the Graph API. Leave the default; tests point it at a fake."},
		},
		Events: []sdk.EventType{
			{Type: EventMessageReceived, Description: "A WhatsApp user sent a message (text, media, location, contacts, interactive or button reply, reaction, or a type Meta does not support). Dedupe key msg:<wamid>."},
			{Type: EventMessageStatus, Description: "A message sent from the number was sent, delivered, read or failed; ledger_id is the biz_opaque_callback_data it was sent with. Dedupe key status:<wamid>:<status>."},
			{Type: EventTemplateStatus, Description: "Meta approved, rejected, paused, disabled or otherwise changed a message template (message_template_status_update)."},
		},
	}
	actions, err := sdk.ActionsFromSchemas(schemaFiles, "schemas", actionDescriptions...)
	if err != nil {
		return sdk.Manifest{}, err
	}
	m.Actions = actions
	return m, nil
}

// Config is a Cloud API connection's configuration.
type Config struct {
	PhoneNumberID   string `json:"phone_number_id"`
	WABAID          string `json:"waba_id"`
	AccessToken     string `json:"access_token"`
	AppSecret       string `json:"app_secret"`
	VerifyToken     string `json:"verify_token"`
	GraphAPIVersion string `json:"graph_api_version"`
	ThroughputTier  int    `json:"throughput_tier"`
	APIBase         string `json:"api_base"`
}

// DecodeConfig reads a connection's config and applies the defaults. It checks
// only the shape; each use checks the fields it needs.
func DecodeConfig(c sdk.Config) (Config, error) {
	var cfg Config
	if err := c.Decode(&cfg); err != nil {
		return Config{}, err
	}
	cfg.PhoneNumberID = strings.TrimSpace(cfg.PhoneNumberID)
	cfg.WABAID = strings.TrimSpace(cfg.WABAID)
	cfg.AccessToken = strings.TrimSpace(cfg.AccessToken)
	cfg.GraphAPIVersion = strings.TrimSpace(cfg.GraphAPIVersion)
	cfg.APIBase = strings.TrimSpace(cfg.APIBase)
	if cfg.GraphAPIVersion == "" {
		cfg.GraphAPIVersion = DefaultGraphAPIVersion
	}
	if cfg.APIBase == "" {
		cfg.APIBase = DefaultAPIBase
	}
	if cfg.ThroughputTier == 0 {
		cfg.ThroughputTier = DefaultThroughputTier
	}
	return cfg, nil
}

// validForCalls checks what every Graph API call needs.
func (cfg Config) validForCalls() error {
	if cfg.AccessToken == "" {
		return sdk.Auth("the connection has no access_token")
	}
	if !versionPattern.MatchString(cfg.GraphAPIVersion) {
		return sdk.Invalid("graph_api_version %q is not like v21.0", cfg.GraphAPIVersion)
	}
	u, err := url.Parse(cfg.APIBase)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return sdk.Invalid("api_base %q is not an absolute http(s) URL", cfg.APIBase)
	}
	validTier := false
	for _, t := range throughputTiers {
		validTier = validTier || t == cfg.ThroughputTier
	}
	if !validTier {
		return sdk.Invalid("throughput_tier %d is not one of Meta's tiers (80, 1000)", cfg.ThroughputTier)
	}
	return nil
}

// endpoint returns the URL of a Graph API node's edge, e.g.
// https://graph.facebook.com/v21.0/1234/messages.
func (cfg Config) endpoint(node, edge string) string {
	return strings.TrimSuffix(cfg.APIBase, "/") + "/" + cfg.GraphAPIVersion + "/" + node + "/" + edge
}
