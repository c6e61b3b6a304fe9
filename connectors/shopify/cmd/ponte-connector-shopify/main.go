// Command ponte-connector-shopify is Ponte's Shopify connector plugin. The
// Ponte host starts it; run by hand it only says that it is a plugin.
package main

import (
	"github.com/ponte-hub/ponte/connectors/shopify"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

func main() { sdk.Serve(shopify.New) }
