//go:build tools

// Package tools pins modules that the peers build needs as data rather than
// as code: build.sh copies the MCS API CRD manifests out of sigs.k8s.io/mcs-api
// in the module cache, so the module must stay in go.mod and go.sum.
package tools

import (
	_ "sigs.k8s.io/mcs-api/config/crd"
)
