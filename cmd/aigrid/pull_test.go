package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"aigrid/engine/gguf"
)

// modelBytes is a small GGUF file made with the engine's writer: big enough
// (about 200 KiB) that a download takes several reads.
func modelBytes(t *testing.T) []byte {
	t.Helper()
	w := gguf.NewWriter()
	w.Set("general.architecture", "llama")
	w.Set("general.name", "pull-test")
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 4*256*200)
	for i := 0; i < len(data); i += 4 {
		binary.LittleEndian.PutUint32(data[i:], math.Float32bits(r.Float32()))
	}
	w.AddTensor("w", gguf.F32, []uint64{256, 200}, data)
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// hub serves files like a model hub's CDN: Range and If-Range through
// http.ServeContent, and faults a test asks for.
type hub struct {
	mu    sync.Mutex
	files map[string][]byte
	etag  map[string]string
	// cutAfter, when positive, makes the next response send that many body
	// bytes and then drop the connection (once).
	cutAfter int
	// stallAfter, when positive, makes the next response send that many body
	// bytes and then hang until the client gives up (once).
	stallAfter  int
	sentBody    chan struct{} // closed when a stalled response has sent its bytes (new at each fault)
	ignoreRange bool
	ranges      []string // the Range header of each request
	served      int      // bytes of successful bodies written, over all requests
}

func newHub(t *testing.T) (*hub, *httptest.Server) {
	h := &hub{files: map[string][]byte{}, etag: map[string]string{}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv
}

// put serves body at path with an ETag (none when empty).
func (h *hub) put(path string, body []byte, etag string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.files[path] = body
	h.etag[path] = etag
}

// fault sets up the next response's fault; see the fields.
func (h *hub) fault(cutAfter, stallAfter int, ignoreRange bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cutAfter, h.stallAfter, h.ignoreRange = cutAfter, stallAfter, ignoreRange
	h.sentBody = make(chan struct{})
}

func (h *hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	body, ok := h.files[r.URL.Path]
	etag := h.etag[r.URL.Path]
	h.ranges = append(h.ranges, r.Header.Get("Range"))
	limit, stall, sent := h.cutAfter, h.stallAfter, h.sentBody
	h.cutAfter, h.stallAfter = 0, 0
	if h.ignoreRange {
		r.Header.Del("Range")
	}
	h.mu.Unlock()
	if target, isRedirect := strings.CutPrefix(r.URL.Path, "/resolve/"); isRedirect {
		// A hub's resolve endpoint: the digest rides on the redirect.
		w.Header().Set("X-Linked-Etag", etag)
		http.Redirect(w, r, "/cdn/"+target, http.StatusFound)
		return
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	cw := &countingWriter{ResponseWriter: w, h: h, limit: max(limit, stall)}
	defer func() {
		if !cw.hitLimit {
			return
		}
		http.NewResponseController(w).Flush()
		if stall > 0 {
			close(sent)
			<-r.Context().Done()
		}
		panic(http.ErrAbortHandler) // drop the connection mid-body
	}()
	http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(body))
}

// countingWriter counts the bytes of successful bodies and stops writing at
// limit (when positive).
type countingWriter struct {
	http.ResponseWriter
	h        *hub
	limit    int
	written  int
	hitLimit bool
	failed   bool
}

func (c *countingWriter) WriteHeader(code int) {
	c.failed = code >= 300
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.limit > 0 && c.written+len(p) >= c.limit {
		p = p[:c.limit-c.written]
		c.hitLimit = true
	}
	n, err := c.ResponseWriter.Write(p)
	c.written += n
	if c.failed {
		return n, err
	}
	c.h.mu.Lock()
	c.h.served += n
	c.h.mu.Unlock()
	if c.hitLimit {
		return n, http.ErrAbortHandler
	}
	return n, err
}

func (h *hub) stats() (ranges []string, served int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.ranges...), h.served
}

func (h *hub) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ranges, h.served = nil, 0
}

// pullCLI runs aigrid pull in-process, as the binary would, with data dir dir.
func pullCLI(ctx context.Context, dir string, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	err = run(ctx, append([]string{"pull", "--data", dir}, args...), &out, &errOut)
	return out.String(), errOut.String(), err
}

// models lists what the models folder holds.
func models(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "models"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func wantFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, not the %d served (or different)", path, len(got), len(want))
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatalf("the pulled file does not open: %v", err)
	}
	f.Close()
}

func TestPullFull(t *testing.T) {
	model := modelBytes(t)
	h, srv := newHub(t)
	h.put("/org/repo/tiny.gguf", model, "")
	dir := t.TempDir()

	out, errOut, err := pullCLI(context.Background(), dir, srv.URL+"/org/repo/tiny.gguf?download=true", "--sha256", strings.ToUpper(digest(model)))
	if err != nil {
		t.Fatalf("pull: %v\n%s", err, errOut)
	}
	final := filepath.Join(dir, "models", "tiny.gguf")
	if strings.TrimSpace(out) != final {
		t.Errorf("stdout %q, want the path %q", out, final)
	}
	wantFile(t, final, model)
	if got := models(t, dir); len(got) != 1 {
		t.Errorf("models folder holds %v, want only tiny.gguf", got)
	}
	// stderr is not a terminal: no progress, one final line.
	if lines := strings.Split(strings.TrimSpace(errOut), "\n"); len(lines) != 1 || !strings.Contains(errOut, "matches --sha256") || strings.Contains(errOut, "\r") {
		t.Errorf("stderr:\n%q", errOut)
	}

	// Pulling again: the same digest is accepted without a download, another is refused.
	h.reset()
	if _, errOut, err := pullCLI(context.Background(), dir, srv.URL+"/org/repo/tiny.gguf", "--sha256", digest(model)); err != nil || !strings.Contains(errOut, "already here") {
		t.Errorf("second pull: %v\n%s", err, errOut)
	}
	if _, _, err := pullCLI(context.Background(), dir, srv.URL+"/org/repo/tiny.gguf"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("pull over an existing file without --sha256: %v", err)
	}
	if ranges, _ := h.stats(); len(ranges) != 0 {
		t.Errorf("the server was asked %d times for a file already here", len(ranges))
	}

	// --name, and a digest announced by the server as a hub does (ETag).
	h.put("/org/repo/tiny.gguf", model, `"`+digest(model)+`"`)
	if _, errOut, err := pullCLI(context.Background(), dir, srv.URL+"/org/repo/tiny.gguf", "--name", "copy.gguf"); err != nil || !strings.Contains(errOut, "matches the server's digest") {
		t.Errorf("pull --name with an announced digest: %v\n%s", err, errOut)
	}
	wantFile(t, filepath.Join(dir, "models", "copy.gguf"), model)
}

// TestPullLinkedEtag follows a hub's redirect and checks the digest that the
// redirect announced, and refuses the file when it does not match.
func TestPullLinkedEtag(t *testing.T) {
	model := modelBytes(t)
	h, srv := newHub(t)
	h.put("/cdn/a.gguf", model, "")
	h.put("/cdn/b.gguf", model, "")
	h.put("/resolve/a.gguf", nil, `"`+digest(model)+`"`)
	h.put("/resolve/b.gguf", nil, `"`+digest([]byte("another file"))+`"`)
	dir := t.TempDir()
	if _, errOut, err := pullCLI(context.Background(), dir, srv.URL+"/resolve/a.gguf"); err != nil || !strings.Contains(errOut, "matches the server's digest") {
		t.Fatalf("pull through a redirect: %v\n%s", err, errOut)
	}
	wantFile(t, filepath.Join(dir, "models", "a.gguf"), model)
	_, _, err := pullCLI(context.Background(), dir, srv.URL+"/resolve/b.gguf")
	if err == nil || !strings.Contains(err.Error(), "SHA-256 mismatch") || !strings.Contains(err.Error(), "server's digest") {
		t.Errorf("wrong announced digest: %v", err)
	}
	if got := models(t, dir); len(got) != 1 {
		t.Errorf("models folder holds %v after a bad digest", got)
	}
}

// TestPullResume: a connection cut mid-body leaves a .part; the next run asks
// only for the rest and the digest covers the whole file.
func TestPullResume(t *testing.T) {
	model := modelBytes(t)
	h, srv := newHub(t)
	h.put("/m.gguf", model, `"v1"`)
	dir := t.TempDir()
	const cut = 70_000
	h.fault(cut, 0, false)
	_, errOut, err := pullCLI(context.Background(), dir, srv.URL+"/m.gguf", "--retries", "0", "--sha256", digest(model))
	if err == nil || !strings.Contains(err.Error(), "run the same command again to resume") {
		t.Fatalf("cut download: %v\n%s", err, errOut)
	}
	part := filepath.Join(dir, "models", "m.gguf.part")
	if st, err := os.Stat(part); err != nil || st.Size() != cut {
		t.Fatalf("after the cut: %v, want a .part of %d bytes", err, cut)
	}

	h.reset()
	if _, errOut, err := pullCLI(context.Background(), dir, srv.URL+"/m.gguf", "--sha256", digest(model)); err != nil {
		t.Fatalf("resume: %v\n%s", err, errOut)
	}
	wantFile(t, filepath.Join(dir, "models", "m.gguf"), model)
	ranges, served := h.stats()
	if len(ranges) != 1 || ranges[0] != "bytes=70000-" || served != len(model)-cut {
		t.Errorf("resume asked %q and got %d bytes; want one request for the last %d", ranges, served, len(model)-cut)
	}
	if got := models(t, dir); len(got) != 1 {
		t.Errorf("models folder holds %v, want only m.gguf", got)
	}
}

// TestPullIgnoredRange: a server that answers a Range request with the whole
// file (200) gets the file written from the start, not appended.
func TestPullIgnoredRange(t *testing.T) {
	model := modelBytes(t)
	h, srv := newHub(t)
	h.put("/m.gguf", model, "")
	dir := t.TempDir()
	h.fault(50_000, 0, false)
	if _, _, err := pullCLI(context.Background(), dir, srv.URL+"/m.gguf", "--retries", "0"); err == nil {
		t.Fatal("cut download succeeded")
	}
	h.reset()
	h.fault(0, 0, true)
	_, errOut, err := pullCLI(context.Background(), dir, srv.URL+"/m.gguf")
	if err != nil {
		t.Fatalf("pull: %v\n%s", err, errOut)
	}
	wantFile(t, filepath.Join(dir, "models", "m.gguf"), model)
	if ranges, served := h.stats(); len(ranges) != 1 || ranges[0] != "bytes=50000-" || served != len(model) {
		t.Errorf("requests %q, %d bytes served", ranges, served)
	}
	if !strings.Contains(errOut, "not checked") || !strings.Contains(errOut, digest(model)) {
		t.Errorf("without a known digest the computed one is printed:\n%s", errOut)
	}
}

// TestPullChangedFile: a .part of an older version of the file is not
// continued with the new version's bytes (If-Range).
func TestPullChangedFile(t *testing.T) {
	old, model := modelBytes(t), modelBytes(t)
	old[len(old)-1] ^= 0xff
	h, srv := newHub(t)
	h.put("/m.gguf", old, `"old"`)
	dir := t.TempDir()
	h.fault(60_000, 0, false)
	if _, _, err := pullCLI(context.Background(), dir, srv.URL+"/m.gguf", "--retries", "0"); err == nil {
		t.Fatal("cut download succeeded")
	}
	h.reset()
	h.put("/m.gguf", model, `"new"`)
	if _, errOut, err := pullCLI(context.Background(), dir, srv.URL+"/m.gguf", "--sha256", digest(model)); err != nil {
		t.Fatalf("pull: %v\n%s", err, errOut)
	}
	wantFile(t, filepath.Join(dir, "models", "m.gguf"), model)
	if _, served := h.stats(); served != len(model) {
		t.Errorf("served %d bytes, want the whole new file", served)
	}
}

// TestPullRetries: within one run, a cut and a stall are resumed by
// themselves, and an interrupted run (SIGINT) keeps its .part.
func TestPullRetries(t *testing.T) {
	model := modelBytes(t)
	h, srv := newHub(t)
	h.put("/m.gguf", model, "")
	dir := t.TempDir()
	var errOut bytes.Buffer
	p := newPuller(&errOut)
	p.backoff = time.Millisecond
	p.stall = 300 * time.Millisecond

	h.fault(30_000, 0, false)
	j, err := newPullJob(srv.URL+"/m.gguf", "", digest(model), filepath.Join(dir, "models"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.pull(context.Background(), j); err != nil {
		t.Fatalf("pull with a cut: %v\n%s", err, errOut.String())
	}
	wantFile(t, filepath.Join(dir, "models", "m.gguf"), model)
	if ranges, served := h.stats(); len(ranges) != 2 || ranges[1] != "bytes=30000-" || served != len(model) {
		t.Errorf("requests %q, %d bytes served", ranges, served)
	}
	if !strings.Contains(errOut.String(), "retry 1 of 5") {
		t.Errorf("stderr:\n%s", errOut.String())
	}

	h.reset()
	h.fault(0, 40_000, false)
	j, _ = newPullJob(srv.URL+"/m.gguf", "stalled.gguf", digest(model), filepath.Join(dir, "models"))
	if _, err := p.pull(context.Background(), j); err != nil {
		t.Fatalf("pull with a stall: %v\n%s", err, errOut.String())
	}
	wantFile(t, filepath.Join(dir, "models", "stalled.gguf"), model)
	if ranges, _ := h.stats(); len(ranges) != 2 || ranges[1] != "bytes=40000-" {
		t.Errorf("requests %q", ranges)
	}

	h.reset()
	h.fault(0, 20_000, false)
	part := filepath.Join(dir, "models", "sigint.gguf.part")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Interrupt once the client holds what the server sent.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if st, err := os.Stat(part); err == nil && st.Size() == 20_000 {
				break
			}
		}
		cancel()
	}()
	_, _, err = pullCLI(ctx, dir, srv.URL+"/m.gguf", "--name", "sigint.gguf")
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("interrupted pull: %v", err)
	}
	if st, err := os.Stat(part); err != nil || st.Size() != 20_000 {
		t.Fatalf("after the interrupt: %v, want a .part of 20000 bytes", err)
	}
	if _, errOut, err := pullCLI(context.Background(), dir, srv.URL+"/m.gguf", "--name", "sigint.gguf", "--sha256", digest(model)); err != nil {
		t.Fatalf("resume after the interrupt: %v\n%s", err, errOut)
	}
	wantFile(t, filepath.Join(dir, "models", "sigint.gguf"), model)
}

func TestPullRefusals(t *testing.T) {
	model := modelBytes(t)
	h, srv := newHub(t)
	h.put("/m.gguf", model, "")
	h.put("/junk.gguf", bytes.Repeat([]byte("not a model "), 1000), "")
	h.put("/short.gguf", model[:len(model)-100], "")
	dir := t.TempDir()

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"wrong digest", []string{srv.URL + "/m.gguf", "--sha256", digest([]byte("x"))}, "SHA-256 mismatch"},
		{"404", []string{srv.URL + "/nothing.gguf"}, "not found (HTTP 404)"},
		{"not a GGUF", []string{srv.URL + "/junk.gguf"}, "not a GGUF file"},
		{"truncated GGUF", []string{srv.URL + "/short.gguf"}, "not a GGUF file"},
		{"bad digest flag", []string{srv.URL + "/m.gguf", "--sha256", "abc"}, "64 hexadecimal digits"},
		{"no file name", []string{srv.URL + "/"}, "pass --name"},
		{"name with a directory", []string{srv.URL + "/m.gguf", "--name", "../m.gguf"}, "plain file name"},
		{"not http", []string{"ftp://host/m.gguf"}, "not an http or https URL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := pullCLI(context.Background(), dir, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error with %q", err, c.want)
			}
			if got := models(t, dir); len(got) != 0 {
				t.Errorf("left behind %v", got)
			}
		})
	}
}

func TestPullAuth(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "gated", http.StatusUnauthorized)
	}))
	defer srv.Close()
	_, _, err := pullCLI(context.Background(), t.TempDir(), srv.URL+"/m.gguf?token=secret")
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("got %v", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("the error shows the URL's query: %v", err)
	}
}

// TestPullDiskFull writes into /dev/full, which fails as a full disk does.
func TestPullDiskFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full here")
	}
	h, srv := newHub(t)
	h.put("/m.gguf", modelBytes(t), "")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "models"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/full", filepath.Join(dir, "models", "m.gguf.part")); err != nil {
		t.Fatal(err)
	}
	_, _, err := pullCLI(context.Background(), dir, srv.URL+"/m.gguf")
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("got %v, want disk full", err)
	}
}

// TestMeter: progress goes to a terminal at most four times a second, and
// never elsewhere.
func TestMeter(t *testing.T) {
	clock := time.Unix(1000, 0)
	var out bytes.Buffer
	m := &meter{w: &out, tty: true, now: func() time.Time { return clock }, began: clock}
	m.start(0, 10<<20)
	for range 100 {
		clock = clock.Add(10 * time.Millisecond) // one second in all
		m.add(1 << 10)
	}
	if n := strings.Count(out.String(), "\r"); n < 3 || n > 5 {
		t.Errorf("%d progress lines in one second:\n%q", n, out.String())
	}
	if !strings.Contains(out.String(), "100.0 KiB/s") || !strings.Contains(out.String(), "/ 10.0 MiB") {
		t.Errorf("progress:\n%q", out.String())
	}
	m.clear()
	if !strings.HasSuffix(out.String(), "\r\033[K") {
		t.Errorf("the line was not cleared")
	}

	out.Reset()
	quiet := &meter{w: &out, tty: false, now: func() time.Time { return clock }, began: clock}
	quiet.add(1 << 20)
	quiet.clear()
	if out.Len() != 0 {
		t.Errorf("progress without a terminal: %q", out.String())
	}
}

func FuzzContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes 5-9/*", "bytes */100", "bytes 9-5/100", "bytes 0-100/100", "bytes +1-2/3", "items 0-1/2", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, total, ok := parseContentRange(s)
		if !ok {
			return
		}
		if start == -1 {
			if end != -1 || total < 0 {
				t.Errorf("%q: unsatisfied range with %d, %d", s, end, total)
			}
			return
		}
		if start < 0 || end < start || (total >= 0 && end >= total) {
			t.Errorf("%q: accepted as %d-%d/%d", s, start, end, total)
		}
	})
}

// TestPullPartStates resumes from .part files left in two odd states: complete
// but not yet verified (the server answers 416), and continued by a server
// whose 206 starts elsewhere than asked (the download starts over).
func TestPullPartStates(t *testing.T) {
	model := modelBytes(t)
	h, srv := newHub(t)
	h.put("/m.gguf", model, "")
	dir := t.TempDir()
	leave := func(name string, part []byte, url string) {
		t.Helper()
		j, err := newPullJob(url, name, "", filepath.Join(dir, "models"))
		if err != nil {
			t.Fatal(err)
		}
		j.meta = partMeta{URL: url, Size: int64(len(model))}
		if err := os.MkdirAll(j.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(j.part(), part, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := j.writeMeta(); err != nil {
			t.Fatal(err)
		}
	}

	leave("done.gguf", model, srv.URL+"/m.gguf")
	if _, errOut, err := pullCLI(context.Background(), dir, srv.URL+"/m.gguf", "--name", "done.gguf", "--sha256", digest(model)); err != nil {
		t.Fatalf("complete .part: %v\n%s", err, errOut)
	}
	wantFile(t, filepath.Join(dir, "models", "done.gguf"), model)
	if ranges, served := h.stats(); len(ranges) != 1 || served != 0 {
		t.Errorf("complete .part: requests %q, %d bytes served", ranges, served)
	}

	var mu sync.Mutex
	var ranges []string
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		if r.Header.Get("Range") != "" {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(model)-1, len(model)))
			w.WriteHeader(http.StatusPartialContent)
		}
		w.Write(model)
	}))
	defer broken.Close()
	leave("b.gguf", bytes.Repeat([]byte{7}, 1000), broken.URL+"/b.gguf")
	if _, errOut, err := pullCLI(context.Background(), dir, broken.URL+"/b.gguf", "--sha256", digest(model)); err != nil {
		t.Fatalf("206 from the wrong place: %v\n%s", err, errOut)
	}
	wantFile(t, filepath.Join(dir, "models", "b.gguf"), model)
	mu.Lock()
	defer mu.Unlock()
	if len(ranges) != 2 || ranges[0] != "bytes=1000-" || ranges[1] != "" {
		t.Errorf("requests %q, want a resume and then a fresh start", ranges)
	}
}

// TestPullTooLong: a body longer than the size the server announced is refused
// rather than appended to, which would never end on a server that repeats it.
func TestPullTooLong(t *testing.T) {
	model := modelBytes(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(model)-1, len(model)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(model)
		w.Write(model[:10])
	}))
	defer srv.Close()
	dir := t.TempDir()
	_, _, err := pullCLI(context.Background(), dir, srv.URL+"/m.gguf")
	if err == nil || !strings.Contains(err.Error(), "more than the 200.2 KiB it announced") {
		t.Errorf("got %v", err)
	}
	if got := models(t, dir); len(got) != 0 {
		t.Errorf("left behind %v", got)
	}
}
