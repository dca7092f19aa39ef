package tokenizer

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// cacheWord is a distinct word for i, some long enough to fill chunks fast,
// with tokens that depend on it.
func cacheWord(i int) (string, []int32) {
	w := fmt.Sprintf("w%d", i)
	if i%7 == 0 {
		w += strings.Repeat("x", 200+i%50)
	}
	ids := make([]int32, 1+i%40)
	for j := range ids {
		ids[j] = int32(i*31 + j)
	}
	return w, ids
}

func TestWordCache(t *testing.T) {
	c := newWordCache()
	if _, ok := c.get("a", nil); ok {
		t.Fatal("an empty cache has a word")
	}
	n := 0
	for ; !c.full.Load(); n++ {
		w, ids := cacheWord(n)
		c.put(w, ids)
	}
	if c.words < 1000 || c.used > maxChunks*chunkSize {
		t.Fatalf("full after %d words, %d bytes", c.words, c.used)
	}
	for i := range n + 10 {
		w, ids := cacheWord(i)
		got, ok := c.get(w, []int32{-1})
		switch {
		case i < c.words && (!ok || !slices.Equal(got, append([]int32{-1}, ids...))):
			t.Fatalf("word %d: %v, %v; want %v", i, got, ok, ids)
		case i >= c.words && ok:
			t.Fatalf("word %d cached past the end", i)
		}
	}
	// Short words fill the table before the chunks.
	c = newWordCache()
	for i := 0; !c.full.Load(); i++ {
		c.put(fmt.Sprint(i), []int32{int32(i)})
	}
	if got, ok := c.get(fmt.Sprint(maxCached-1), nil); c.words != maxCached || !ok || got[0] != maxCached-1 {
		t.Fatalf("full at %d short words, the last %v %v", c.words, got, ok)
	}

	long := strings.Repeat("y", maxWord+1)
	c = newWordCache()
	c.put(long, []int32{1})
	c.put("many", make([]int32, 256))
	c.put("twice", []int32{1})
	c.put("twice", []int32{2})
	if _, ok := c.get(long, nil); ok {
		t.Error("a word longer than an entry allows is cached")
	}
	if _, ok := c.get("many", nil); ok {
		t.Error("a word of more tokens than an entry allows is cached")
	}
	if got, _ := c.get("twice", nil); !slices.Equal(got, []int32{1}) || c.words != 1 {
		t.Errorf("a word put twice: %v, %d words", got, c.words)
	}
}

// Readers and writers at once (run with -race): every answer is right.
func TestWordCacheConcurrent(t *testing.T) {
	c := newWordCache()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 3000 {
				w, ids := cacheWord((i*7 + g*1000) % 5000)
				if got, ok := c.get(w, nil); ok && !slices.Equal(got, ids) {
					t.Errorf("%s: %v, want %v", w, got, ids)
					return
				}
				c.put(w, ids)
			}
		})
	}
	wg.Wait()
}
