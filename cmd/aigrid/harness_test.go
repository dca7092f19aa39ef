package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"aigrid/internal/logbuf"
)

// grid is a real aigrid server started in-process on loopback for a test.
type grid struct {
	t        *testing.T
	main     *Main
	url      string
	adminKey string
	logs     *logbuf.Buffer
}

// startGrid runs aigrid serve with the given config file text (may be empty)
// in a fresh data directory and stops it when the test ends.
func startGrid(t *testing.T, configYAML string) *grid {
	t.Helper()
	return startGridIn(t, filepath.Join(t.TempDir(), "data"), configYAML)
}

// startGridIn is startGrid on the data directory given.
func startGridIn(t *testing.T, dataDir, configYAML string) *grid {
	t.Helper()
	dir := t.TempDir()
	m := NewMain()
	m.DataDir = dataDir
	m.Listen = "127.0.0.1:0"
	m.Grace = 5 * time.Second
	var stdout bytes.Buffer
	m.Stdout = &stdout
	logs := &logbuf.Buffer{}
	m.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if configYAML != "" {
		m.ConfigPath = filepath.Join(dir, "grid.yaml")
		if err := os.WriteFile(m.ConfigPath, []byte(configYAML), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Run(context.Background(), "", io.Discard); err != nil {
		t.Fatalf("start: %v", err)
	}
	g := &grid{t: t, main: m, url: "http://" + m.Addr(), adminKey: m.AdminKey, logs: logs}
	t.Cleanup(func() {
		if m.http != nil {
			m.Close()
		}
	})
	return g
}

// do sends a JSON request with a bearer key and decodes a JSON answer into out (when not nil).
func (g *grid) do(method, path, key string, body any, out any) *http.Response {
	g.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			g.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, g.url+path, rd)
	if err != nil {
		g.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			g.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp
}

// apiError is OpenAI's error body.
type apiError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Code    string  `json:"code"`
		Param   *string `json:"param"`
	} `json:"error"`
}

// decodeBody decodes a JSON response body and closes it.
func decodeBody(t *testing.T, resp *http.Response, out any) {
	t.Helper()
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("decode %q: %v", raw, err)
	}
}
