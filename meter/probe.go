package meter

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// SlowSync is the sync time past which the journal's disk slows every
// metered call noticeably: each waits for its group's sync before it is
// answered.
const SlowSync = 10 * time.Millisecond

// ProbeSync measures how long the disk under dir takes to make a small write
// durable, as the journal's group commits do: the median of rounds writes of
// 4 KiB, each followed by fdatasync, to a scratch file that is removed
// afterwards. A local SSD answers in well under a millisecond; network
// block storage and some virtual disks take several.
func ProbeSync(dir string, rounds int) (time.Duration, error) {
	path := filepath.Join(dir, "sync-probe.tmp")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("meter: probe the disk's sync: %w", err)
	}
	defer os.Remove(path)
	defer f.Close()
	block := make([]byte, 4096)
	// The first round also allocates the file's block, as a fresh segment's
	// zero-fill does ahead of time: it is not counted.
	times := make([]time.Duration, 0, rounds)
	for i := range rounds + 1 {
		start := time.Now()
		if _, err := f.WriteAt(block, 0); err != nil {
			return 0, fmt.Errorf("meter: probe the disk's sync: %w", err)
		}
		if err := syncData(f); err != nil {
			return 0, fmt.Errorf("meter: probe the disk's sync: %w", err)
		}
		if i > 0 {
			times = append(times, time.Since(start))
		}
	}
	slices.Sort(times)
	return times[len(times)/2], nil
}
