package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The backup's file is sent whole, with its length and a name, and removed
// once sent; a backup that fails is a 500 that says what to check, and
// leaves nothing behind.
func TestBackupSendsAndRemoves(t *testing.T) {
	dir := t.TempDir()
	content := strings.Repeat("SQLite format 3\x00", 5000)
	var made string
	s := New(Config{Backup: func(ctx context.Context) (string, error) {
		f, err := os.CreateTemp(dir, "aigrid-backup-*.tmp")
		if err != nil {
			return "", err
		}
		defer f.Close()
		made = f.Name()
		_, err = f.WriteString(content)
		return made, err
	}})
	w := httptest.NewRecorder()
	s.backup(w, httptest.NewRequest("GET", "/admin/v1/backup", nil))
	if w.Code != 200 || w.Body.String() != content {
		t.Fatalf("status %d, %d bytes; want 200 and the file's %d", w.Code, w.Body.Len(), len(content))
	}
	h := w.Header()
	if h.Get("Content-Length") != strconv.Itoa(len(content)) || h.Get("Content-Type") != "application/vnd.sqlite3" ||
		!strings.HasPrefix(h.Get("Content-Disposition"), `attachment; filename="aigrid-backup-`) {
		t.Errorf("headers %v", h)
	}
	if _, err := os.Stat(made); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the copy sent is still there: %v", err)
	}

	failing := New(Config{Backup: func(ctx context.Context) (string, error) {
		return "", errors.New("sqlite: backup: database or disk is full (13)")
	}})
	w = httptest.NewRecorder()
	failing.backup(w, httptest.NewRequest("GET", "/admin/v1/backup", nil))
	var body struct {
		Error struct{ Message, Code string }
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != 500 || body.Error.Code != "internal" ||
		!strings.Contains(body.Error.Message, "disk is full") || !strings.Contains(body.Error.Message, "free space") {
		t.Errorf("a failed backup: %d %s", w.Code, w.Body.String())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}
