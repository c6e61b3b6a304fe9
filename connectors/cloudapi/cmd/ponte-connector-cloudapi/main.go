// Command ponte-connector-cloudapi is Ponte's WhatsApp Cloud API connector
// plugin. The Ponte host starts it; run by hand it only says that it is a
// plugin.
package main

import (
	"github.com/ponte-hub/ponte/connectors/cloudapi"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

func main() { sdk.Serve(cloudapi.New) }
