// Command hello prints a greeting; BuildBinary's test builds and runs it.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Println("hello from", os.Args[0])
}
