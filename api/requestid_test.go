package api

import (
	"strings"
	"testing"
	"time"
)

// Call ids are unique, and their time prefix never goes backwards, so that
// ids made later sort after ids made in an earlier millisecond.
func TestRequestIDsSortByTime(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for i := range 20_000 {
		id := newRequestID()
		if !strings.HasPrefix(id, "req_") || len(id) != 28 || seen[id] {
			t.Fatalf("id %d: %q (seen before: %v)", i, id, seen[id])
		}
		seen[id] = true
		if prefix := id[4:16]; prefix < prev {
			t.Fatalf("id %d: time prefix %s after %s", i, prefix, prev)
		} else {
			prev = prefix
		}
		if i == 10_000 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	if first, last := newRequestID(), (func() string { time.Sleep(2 * time.Millisecond); return newRequestID() })(); first >= last {
		t.Errorf("%s made before %s sorts after it", first, last)
	}
}
