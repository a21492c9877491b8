//go:build tools

// Package tools pins the helm command that hack/helm builds, so that
// `go mod tidy` keeps every dependency it needs in go.mod/go.sum.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
