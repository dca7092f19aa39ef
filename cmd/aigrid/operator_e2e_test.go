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

// An admin body with a field the grid does not know is refused, naming it,
// and changes nothing: a misspelt max_concurrency was dropped, and the
// provider stored with no limit.
func TestAdminRefusesUnknownFields(t *testing.T) {
	g := startGrid(t, "")
	var e apiError
	provider := `{"base_url": "http://127.0.0.1:1/v1", "offers": [{"model": "m", "serves": ["chat"], "max_concurency": 4}]}`
	if resp := g.do("PUT", "/admin/v1/providers/up1", g.adminKey, provider, &e); resp.StatusCode != http.StatusBadRequest ||
		e.Error.Param == nil || *e.Error.Param != "max_concurency" || !strings.Contains(e.Error.Message, `"max_concurency"`) {
		t.Errorf("provider with a misspelt field: %d %+v", resp.StatusCode, e)
	}
	if resp := g.do("GET", "/admin/v1/providers/up1", g.adminKey, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("the refused provider was stored: %d", resp.StatusCode)
	}
	if resp := g.do("POST", "/admin/v1/tenants", g.adminKey, `{"name": "school-b", "class": "lifeline"}`, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create tenant: %d", resp.StatusCode)
	}
	// A tenant made disabled is disabled (it was made active, silently).
	var made map[string]any
	if resp := g.do("POST", "/admin/v1/tenants", g.adminKey, `{"name": "pilot", "disabled": true}`, &made); resp.StatusCode != http.StatusCreated || made["disabled"] != true {
		t.Errorf("create a disabled tenant: %d %v", resp.StatusCode, made)
	}
	e = apiError{}
	if resp := g.do("PATCH", "/admin/v1/tenants/school-b", g.adminKey, `{"clas": "priority"}`, &e); resp.StatusCode != http.StatusBadRequest ||
		e.Error.Param == nil || *e.Error.Param != "clas" {
		t.Errorf("tenant update with a misspelt field: %d %+v", resp.StatusCode, e)
	}
	// The CLI reads a --file itself: it refuses the field too, before
	// sending (it dropped it, and the server never saw it).
	file := filepath.Join(t.TempDir(), "up1.json")
	if err := os.WriteFile(file, []byte(provider), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := g.cli(t, "provider", "add", "up1", "--file", file); err == nil || !strings.Contains(err.Error(), `"max_concurency"`) {
		t.Errorf("provider add --file with a misspelt field: %q %v", out, err)
	}
	if resp := g.do("GET", "/admin/v1/providers/up1", g.adminKey, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("the refused provider was stored: %d", resp.StatusCode)
	}
	// What GET answers goes back in as it is.
	var p map[string]any
	if resp := g.do("PUT", "/admin/v1/providers/up2", g.adminKey, `{"base_url": "http://127.0.0.1:1/v1", "offers": [{"model": "m", "serves": ["chat"]}]}`, &p); resp.StatusCode != http.StatusOK {
		t.Fatalf("put provider: %d %v", resp.StatusCode, p)
	}
	if resp := g.do("PUT", "/admin/v1/providers/up2", g.adminKey, p, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("a provider as GET answers it: %d", resp.StatusCode)
	}
}
