// Command ponte-connector-woocommerce is Ponte's WooCommerce connector plugin.
// The Ponte host starts it; run by hand it only says that it is a plugin.
package main

import (
	"github.com/ponte-hub/ponte/connectors/woocommerce"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

func main() { sdk.Serve(woocommerce.New) }
