package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"aigrid/internal/logbuf"
)

// The operator can take Go's profiles of a running grid with the admin key,
// and nobody else can.
func TestProfilesNeedTheAdminKey(t *testing.T) {
	g := startGrid(t, "")
	get := func(path, key string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", g.url+path, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	if resp, _ := get("/admin/debug/pprof/heap", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("heap without a key: %d", resp.StatusCode)
	}
	for _, path := range []string{"/admin/debug/pprof/heap", "/admin/debug/pprof/goroutine", "/admin/debug/pprof/profile?seconds=1"} {
		resp, body := get(path, g.adminKey)
		// A profile is gzipped protocol buffers.
		if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
			t.Errorf("%s: %d, %d bytes starting %q", path, resp.StatusCode, len(body), body[:min(len(body), 16)])
		}
	}
	var e apiError
	if resp := g.do("GET", "/admin/debug/pprof/nonsense", g.adminKey, nil, &e); resp.StatusCode != http.StatusNotFound || e.Error.Message == "" {
		t.Errorf("unknown profile: %d %+v", resp.StatusCode, e)
	}
}

// An unmetered start over a data directory whose journal holds settlements
// says so: they reach the ledger only when the meter runs again.
func TestUnmeteredWarnsOfAJournal(t *testing.T) {
	dir := t.TempDir()
	m := NewMain()
	m.DataDir = filepath.Join(dir, "data")
	m.Listen = "127.0.0.1:0"
	m.Stdout = io.Discard
	m.Unmetered = true
	logs := &logbuf.Buffer{}
	m.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	if err := os.MkdirAll(m.journalDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.journalDir(), "0000000000000001.journal"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background(), "", io.Discard); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !strings.Contains(logs.String(), "settlement journal holds calls") {
		t.Errorf("no warning in the log:\n%s", logs.String())
	}
}
