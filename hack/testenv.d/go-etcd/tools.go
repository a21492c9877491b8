//go:build tools

// Package tools pins the etcd server command (package main of
// go.etcd.io/etcd/server/v3) that hack/testenv builds.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
