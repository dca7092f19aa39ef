// Package shareddata finds the reference data that sits beside the project
// (../shared/data next to the module root) for tests and benchmarks. A user's
// machine has no such directory: callers skip, saying why, when Dir reports none.
package shareddata

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the absolute path of ../shared/data/SUB beside the module root,
// or "" when it is absent.
func Dir(sub string) string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(filepath.Dir(dir), "shared", "data", sub)
			if _, err := os.Stat(p); err == nil {
				return p
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Require returns Dir(sub) or skips the test when the data is absent.
func Require(t testing.TB, sub string) string {
	t.Helper()
	p := Dir(sub)
	if p == "" {
		t.Skipf("reference data ../shared/data/%s is absent (it sits beside the project checkout, not in it)", sub)
	}
	return p
}
