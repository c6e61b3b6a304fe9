// Command ponte-connector-example is the example connector as a Ponte plugin.
// Drop the binary into the host's plugin directory; it is not meant to be run
// by hand.
package main

import (
	"github.com/ponte-hub/ponte/connectors/example"
	"github.com/ponte-hub/ponte/plugins/sdk"
)

func main() { sdk.Serve(example.New) }
