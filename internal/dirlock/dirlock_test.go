package dirlock

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestOneHolder(t *testing.T) {
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

// Where flock is missing, the lock file's being there is the lock: a second
// holder is refused, told which process holds it and what to remove after
// a crash; a release removes it.
func TestFileLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	first, err := takeFile(path, "the test directory")
	if err != nil {
		t.Fatal(err)
	}
	_, err = takeFile(path, "the test directory")
	if err == nil || !strings.Contains(err.Error(), "in use by process "+strconv.Itoa(os.Getpid())) || !strings.Contains(err.Error(), "remove "+path) {
		t.Fatalf("taken twice: %v", err)
	}
	first.Release()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the lock file is still there after release: %v", err)
	}
	again, err := takeFile(path, "the test directory")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again.Release()
}
