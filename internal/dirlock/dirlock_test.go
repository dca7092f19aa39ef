package dirlock

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestOneHolder(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skip("no flock on", runtime.GOOS)
	}
	path := filepath.Join(t.TempDir(), "lock")
	first, err := Take(path, "the test directory")
	if err != nil {
		t.Fatal(err)
	}
	// A second open of the file is another holder, even in this process.
	_, err = Take(path, "the test directory")
	if err == nil || !strings.Contains(err.Error(), "the test directory is in use by process "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("taken twice: %v", err)
	}
	first.Release()
	first.Release() // twice is harmless
	again, err := Take(path, "the test directory")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again.Release()
}
