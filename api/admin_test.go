package api

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"aigrid"
)

// The block and mutex profiles hold what happened during their seconds: Go
// records neither while its rate is zero, as it is by default, so a profile
// served without turning it on was always empty.
func TestContentionProfilesRecord(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/debug/pprof/{profile}", profile)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	ch := make(chan int)
	sum := 0
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case ch <- 1: // blocks until the reader takes it
				}
				mu.Lock()
				for i := range 10000 {
					sum += i
				}
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-ch:
				time.Sleep(10 * time.Microsecond)
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	for _, name := range []string{"mutex", "block"} {
		resp, err := http.Get(srv.URL + "/admin/debug/pprof/" + name + "?seconds=1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
			t.Fatalf("%s: %d %q", name, resp.StatusCode, body[:min(len(body), 64)])
		}
	}
	if n, _ := runtime.MutexProfile(nil); n == 0 {
		t.Error("the mutex profile recorded no contention")
	}
	if n, _ := runtime.BlockProfile(nil); n == 0 {
		t.Error("the block profile recorded no blocking")
	}
	if f := runtime.SetMutexProfileFraction(-1); f != 0 {
		t.Errorf("the mutex profile is left on (fraction %d)", f)
	}

	resp, err := http.Get(srv.URL + "/admin/debug/pprof/mutex?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("debug=1: %d", resp.StatusCode)
	}
}

// Whatever an admin body holds, decodeStrictJSON answers nil or a 400, one
// that names the field as its param for an unknown field, and never panics.
func FuzzUnknownField(f *testing.F) {
	f.Add([]byte(`{"base_url": "http://x/v1", "offers": [{"model": "m", "serves": ["chat"], "max_concurency": 4}]}`))
	f.Add([]byte(`{"clas": "priority"}`))
	f.Add([]byte(`{"timeouts": {"connect": "5s", "idle": 3}}`))
	f.Add([]byte(`[1, 2]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, v := range []any{&aigrid.ProviderConfig{}, &aigrid.TenantUpdate{}, &createKeyRequest{}} {
			err := decodeStrictJSON(body, v)
			var e *aigrid.Error
			if err != nil && (!errors.As(err, &e) || e.Code != aigrid.EInvalid ||
				strings.HasPrefix(e.Message, "Unknown field") && !strings.Contains(e.Message, strconv.Quote(e.Param))) {
				t.Errorf("%q: %v", body, err)
			}
		}
	})
}
