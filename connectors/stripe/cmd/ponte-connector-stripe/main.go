// Command ponte-connector-stripe is Ponte's Stripe connector plugin. The Ponte
// host starts it; run by hand it only says that it is a plugin.
package main

import (
	stripeconnector "github.com/ponte-hub/ponte/connectors/stripe"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

func main() { sdk.Serve(stripeconnector.New) }
