// Command coredns is an unmodified CoreDNS, built from the upstream module with
// its default plugin set (which includes the kubernetes plugin and its
// multicluster option). It exists only so the e2e tests can build CoreDNS
// through the Go module proxy instead of downloading a release binary.
package main

import (
	_ "github.com/coredns/coredns/core/plugin" // the standard plugin list
	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
