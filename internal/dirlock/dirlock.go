// Package dirlock keeps a directory to one process at a time: a grid's data
// directory, a meter's journal. Two servers on one data directory would
// apply and delete each other's journal segments, and each keep balances of
// its own.
package dirlock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// Lock is a directory held by this process until Release.
type Lock struct {
	f *os.File
	// path is the lock file to remove at Release, when the file's being
	// there is the lock (takeFile); a flock's file stays.
	path string
}

// Release lets another process take the directory.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	l.f.Close()
	l.f = nil
	if l.path != "" {
		os.Remove(l.path)
	}
}

// takeFile takes the lock by making the file at path, which must not be
// there, for systems without flock. A process that dies leaves the file
// behind, so the refusal says to remove it once no aigrid runs.
func takeFile(path, what string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%s is in use by %s, or was by one that stopped without letting go of it: another aigrid serves from this data directory, and one at a time may; if none runs, remove %s",
			what, holder(path), path)
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	return &Lock{f: f, path: path}, nil
}

// holder names the process whose ID the lock file at path keeps.
func holder(path string) string {
	raw, _ := os.ReadFile(path)
	if pid := strings.TrimSpace(string(raw)); pid != "" {
		return "process " + pid
	}
	return "another process"
}
