package sdk_test

import (
	"net/http"
	"time"

	"github.com/ponte-hub/ponte/plugins/sdk"
)

// tinyCRM is a connector; it and its methods (HandleWebhook, Invoke, ...)
// live in the connector's own package, here tinycrm.
type tinyCRM struct {
	host sdk.Host
	http *http.Client
}

// newTinyCRM is the connector's sdk.Factory. It runs once per plugin process,
// after the host has connected; keep it cheap and free of network calls.
func newTinyCRM(host sdk.Host) (sdk.Connector, error) {
	return &tinyCRM{host: host, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

func (c *tinyCRM) Manifest() sdk.Manifest {
	return sdk.Manifest{Name: "tinycrm", Version: "1.0.0", DisplayName: "Tiny CRM"}
}

// Serve is a connector's whole main, in cmd/ponte-connector-tinycrm/main.go:
//
//	func main() { sdk.Serve(tinycrm.New) }
//
// This example is compiled but not run: Serve blocks while it serves the Ponte
// host, and only works in a process the host started (with MagicCookieKey set
// to MagicCookieValue and the go-plugin handshake on stdout). Run by hand, the
// binary prints that it is a plugin and exits. To exercise a connector in a
// test, use plugins/testkit, which runs it in-process over the same protocol.
func ExampleServe() {
	sdk.Serve(newTinyCRM)
}
