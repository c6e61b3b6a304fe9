// Command ponte-connector-linkeddevice is Ponte's WhatsApp linked-device
// connector plugin. The Ponte host starts it; run by hand it only says that
// it is a plugin. Built with the linkeddevice_fake tag, it talks to a fake
// WhatsApp client instead (for tests; see the package documentation).
package main

import (
	"github.com/ponte-hub/ponte/connectors/linkeddevice"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

func main() { sdk.Serve(linkeddevice.New) }
