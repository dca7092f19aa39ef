package main

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"aigrid"
	"aigrid/engine/tensor"
)

// A local provider in a binary without the vector kernels is started with a
// warning that says how to build it; with them, without one.
func TestPortableKernelsWarning(t *testing.T) {
	var logs bytes.Buffer
	m := NewMain()
	m.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	m.newProvider(&aigrid.ProviderConfig{Name: "here", Kind: aigrid.KindLocal,
		Offers: []aigrid.Offer{{Model: "m", Path: filepath.Join(t.TempDir(), "missing.gguf"), Serves: []string{"chat"}}}})
	warned := strings.Contains(logs.String(), "GOEXPERIMENT=simd")
	if want := runtime.GOARCH == "amd64" && !tensor.Vectorized(); warned != want {
		t.Errorf("warned %v, want %v: %s", warned, want, logs.String())
	}
}
