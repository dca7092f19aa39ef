package meter

import (
	"os"
	"path/filepath"
	"testing"
)

// The probe times real syncs and leaves nothing behind; a directory it
// cannot write to is an error, not a time.
func TestProbeSync(t *testing.T) {
	dir := t.TempDir()
	d, err := ProbeSync(dir, 3)
	if err != nil || d <= 0 {
		t.Fatalf("probe: %v, %v", d, err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("the probe left %v", left)
	}
	if _, err := ProbeSync(filepath.Join(dir, "missing"), 3); err == nil {
		t.Fatal("a missing directory was probed")
	}
}
