package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"aigrid/engine/gguf"
)

const pullUsage = "aigrid pull URL [--sha256 HEX] [--name FILE] [--data DIR] [--retries N]"

// runPull downloads a GGUF file into the data directory's models folder.
func runPull(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("aigrid pull", flag.ContinueOnError)
	var help bytes.Buffer
	fs.SetOutput(&help)
	dataDir := fs.String("data", defaultDataDir, "data directory; the file goes into its models folder")
	fs.StringVar(dataDir, "data-dir", defaultDataDir, "same as --data")
	want := fs.String("sha256", "", "expected SHA-256 of the file, in hex (else the server's, if it announces one)")
	name := fs.String("name", "", "file name to save as (default: the last element of the URL's path)")
	p := newPuller(stderr)
	fs.IntVar(&p.retries, "retries", p.retries, "how many times a cut or stalled download resumes by itself")
	fs.Usage = func() {
		fmt.Fprintf(&help, "usage: %s\n\nflags:\n", pullUsage)
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.Copy(stdout, &help)
			return errUsageShown
		}
		return fmt.Errorf("%v\n%s", err, help.String())
	}
	if len(pos) != 1 {
		return fmt.Errorf("pull takes one URL\nusage: %s", pullUsage)
	}
	j, err := newPullJob(pos[0], *name, *want, filepath.Join(*dataDir, "models"))
	if err != nil {
		return err
	}
	final, err := p.pull(ctx, j)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, final)
	return nil
}

// pullJob is one file to download and what is known of it so far.
type pullJob struct {
	url     string
	display string // the URL without query or credentials, for messages
	dir     string
	name    string
	want    string // from --sha256

	meta   partMeta
	h      hash.Hash
	hashed int64 // bytes of the .part file that h has seen, from its start
	total  int64 // size of the whole file, -1 while unknown
	linked string
}

// partMeta is kept beside the .part file so that a later run resumes the same
// download: same URL, same version of the file.
type partMeta struct {
	URL string `json:"url"`
	// Validator is the first response's strong ETag or Last-Modified, sent as
	// If-Range so that a file changed on the server restarts from zero.
	Validator string `json:"validator,omitempty"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256,omitempty"` // the digest the server announced
}

func newPullJob(rawURL, name, want, dir string) (*pullJob, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("pull: %q is not an http or https URL", rawURL)
	}
	display := u.Scheme + "://" + u.Host + u.EscapedPath()
	if name == "" {
		name = path.Base(u.Path)
		if !validFileName(name) {
			return nil, fmt.Errorf("pull: cannot tell a file name from %s; pass --name FILE", display)
		}
	} else if !validFileName(name) {
		return nil, fmt.Errorf("pull: --name %q must be a plain file name, without directories", name)
	}
	if want != "" {
		if !isSHA256Hex(want) {
			return nil, fmt.Errorf("pull: --sha256 must be 64 hexadecimal digits, got %q", want)
		}
		want = strings.ToLower(want)
	}
	return &pullJob{url: rawURL, display: display, dir: dir, name: name, want: want, h: sha256.New(), total: -1}, nil
}

func validFileName(name string) bool {
	return name != "" && name != "." && name != ".." && name != "/" && !strings.ContainsAny(name, `/\`) &&
		!strings.HasSuffix(name, ".part") && !strings.HasSuffix(name, ".part.json")
}

func isSHA256Hex(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func (j *pullJob) final() string    { return filepath.Join(j.dir, j.name) }
func (j *pullJob) part() string     { return j.final() + ".part" }
func (j *pullJob) metaPath() string { return j.part() + ".json" }

// puller downloads files; its fields are the knobs tests turn.
type puller struct {
	transport http.RoundTripper
	stderr    io.Writer
	tty       bool
	now       func() time.Time
	retries   int
	backoff   time.Duration // the first wait before a retry; it doubles up to maxBackoff
	stall     time.Duration // a response that sends nothing for this long is given up
}

const maxBackoff = 30 * time.Second

func newPuller(stderr io.Writer) *puller {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Transparent gzip would make byte offsets those of the decoded stream, and
	// Range requests would then resume at the wrong place.
	t.DisableCompression = true
	return &puller{transport: t, stderr: stderr, tty: isTerminal(stderr), now: time.Now,
		retries: 5, backoff: time.Second, stall: time.Minute}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// transientError marks a failure after which another attempt may get further.
type transientError struct{ err error }

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

// errRestart says that the .part file was dropped and the download starts over.
var errRestart = errors.New("the server's answer does not continue the partial file")

var (
	errStalled = errors.New("stalled")
	errTooLong = errors.New("longer than announced")
)

// pull downloads j, verifies it and moves it into place; it returns the final path.
func (p *puller) pull(ctx context.Context, j *pullJob) (string, error) {
	if err := os.MkdirAll(j.dir, 0o700); err != nil {
		return "", fmt.Errorf("pull: cannot create the models folder: %w", err)
	}
	if _, err := os.Stat(j.final()); err == nil {
		return p.alreadyThere(j)
	}
	client := &http.Client{Transport: p.transport, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		// Model hubs answer with a redirect to a CDN and announce the LFS
		// file's SHA-256 on the redirect only.
		if d := tagDigest(req.Response.Header.Get("X-Linked-Etag")); d != "" {
			j.linked = d
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}}
	m := &meter{w: p.stderr, tty: p.tty, now: p.now, began: p.now()}
	failures, restarted := 0, false
	wait := p.backoff
	for {
		before := j.hashed
		err := p.fetch(ctx, client, j, m)
		if err == nil {
			break
		}
		if errors.Is(err, errRestart) {
			if restarted {
				m.clear()
				return "", fmt.Errorf("pull %s: %w, twice", j.display, err)
			}
			restarted = true
			continue
		}
		var te transientError
		if !errors.As(err, &te) {
			m.clear()
			return "", err
		}
		if j.hashed > before {
			failures, wait = 0, p.backoff
		}
		if failures >= p.retries {
			m.clear()
			return "", fmt.Errorf("pull %s: %w; %s kept in %s: run the same command again to resume",
				j.display, err, sizeString(j.hashed), j.part())
		}
		failures++
		m.clear()
		fmt.Fprintf(p.stderr, "aigrid: %v; resuming in %s (retry %d of %d)\n", err, wait, failures, p.retries)
		select {
		case <-ctx.Done():
			return "", p.interrupted(j, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, maxBackoff)
	}
	m.clear()
	return p.finish(j, m)
}

// alreadyThere accepts an existing file only when --sha256 says it is the one wanted.
func (p *puller) alreadyThere(j *pullJob) (string, error) {
	if j.want == "" {
		return "", fmt.Errorf("pull: %s already exists; delete it to download again", j.final())
	}
	got, err := fileDigest(j.final())
	if err != nil {
		return "", fmt.Errorf("pull: %w", err)
	}
	if got != j.want {
		return "", fmt.Errorf("pull: %s already exists with SHA-256 %s, not %s; delete it to download again", j.final(), got, j.want)
	}
	fmt.Fprintf(p.stderr, "aigrid: %s is already here (SHA-256 matches)\n", j.final())
	return j.final(), nil
}

func fileDigest(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// fetch makes one request and appends what it receives to the .part file.
// It returns nil once the file is complete.
func (p *puller) fetch(ctx context.Context, client *http.Client, j *pullJob, m *meter) error {
	off := int64(0)
	if st, err := os.Stat(j.part()); err == nil {
		off = st.Size()
	}
	if off > 0 && (j.readMeta() != nil || j.meta.URL != j.url) {
		off = 0 // a .part of another download, or of unknown origin
	}
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(p.stall, func() { cancel(errStalled) })
	defer stall.Stop()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, j.url, nil)
	if err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	req.Header.Set("User-Agent", "aigrid/"+version)
	if off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
		if j.meta.Validator != "" {
			req.Header.Set("If-Range", j.meta.Validator)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return p.interrupted(j, ctx.Err())
		}
		if context.Cause(actx) == errStalled {
			return transientError{fmt.Errorf("no answer from %s for %s", j.display, p.stall)}
		}
		if j.hashed > 0 || off > 0 {
			return transientError{err}
		}
		return fmt.Errorf("pull: %w", err)
	}
	defer resp.Body.Close()

	switch resp.StatusCode {
	case http.StatusOK:
		off = 0
		j.meta = partMeta{URL: j.url, Validator: validator(resp.Header), Size: resp.ContentLength, SHA256: j.announced(resp.Header)}
		j.total = resp.ContentLength
		if err := j.writeMeta(); err != nil {
			return err
		}
	case http.StatusPartialContent:
		start, _, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		switch {
		case !ok || start != off || (off > 0 && total >= 0 && j.meta.Size >= 0 && total != j.meta.Size):
			return j.restart()
		case off == 0:
			j.meta = partMeta{URL: j.url, Validator: validator(resp.Header), Size: total, SHA256: j.announced(resp.Header)}
			if err := j.writeMeta(); err != nil {
				return err
			}
		default:
			if d := j.announced(resp.Header); d != "" {
				j.meta.SHA256 = d
			}
		}
		j.total = total
	case http.StatusRequestedRangeNotSatisfiable:
		// The .part may already hold the whole file (a run stopped before verifying it).
		_, _, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || total != off || j.meta.Size != off {
			return j.restart()
		}
		j.total = total
		return j.hashPart(off)
	case http.StatusNotFound:
		return fmt.Errorf("pull %s: not found (HTTP 404)", j.display)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("pull %s: HTTP %s: the server wants credentials (a gated or private model?)", j.display, resp.Status)
	default:
		err := fmt.Errorf("pull %s: HTTP %s", j.display, resp.Status)
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			return transientError{err}
		}
		return err
	}

	f, err := j.openPart(off)
	if err != nil {
		return err
	}
	if err := j.hashPart(off); err != nil {
		f.Close()
		return err
	}
	m.start(off, j.total)
	err = p.receive(ctx, actx, stall, resp.Body, f, j, m)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return p.classify(ctx, j, err)
	}
	if j.total >= 0 && j.hashed != j.total {
		return transientError{fmt.Errorf("the connection closed after %s of %s", sizeString(j.hashed), sizeString(j.total))}
	}
	return nil
}

// receive copies the body into f, hashing and counting as it goes.
func (p *puller) receive(ctx, actx context.Context, stall *time.Timer, body io.Reader, f *os.File, j *pullJob, m *meter) error {
	buf := make([]byte, 256<<10)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			stall.Reset(p.stall)
			if j.total >= 0 && j.hashed+int64(n) > j.total {
				return errTooLong
			}
			if _, err := f.Write(buf[:n]); err != nil {
				return err
			}
			j.h.Write(buf[:n])
			j.hashed += int64(n)
			m.add(n)
		}
		switch {
		case rerr == io.EOF:
			return nil
		case rerr != nil && ctx.Err() != nil:
			return ctx.Err()
		case rerr != nil && context.Cause(actx) == errStalled:
			return transientError{fmt.Errorf("no data from %s for %s", j.display, p.stall)}
		case rerr != nil:
			return transientError{fmt.Errorf("the connection broke after %s: %w", sizeString(j.hashed), rerr)}
		}
	}
}

// classify turns a failure while receiving into the message a person needs.
func (p *puller) classify(ctx context.Context, j *pullJob, err error) error {
	var te transientError
	switch {
	case ctx.Err() != nil:
		return p.interrupted(j, ctx.Err())
	case errors.Is(err, errTooLong):
		j.discard()
		return fmt.Errorf("pull %s: the server sent more than the %s it announced; the download was deleted", j.display, sizeString(j.total))
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("pull: disk full writing %s; %s kept: free some space and run the same command again to resume", j.part(), sizeString(j.hashed))
	case errors.As(err, &te):
		return err
	default:
		return fmt.Errorf("pull: writing %s: %w", j.part(), err)
	}
}

func (p *puller) interrupted(j *pullJob, err error) error {
	return fmt.Errorf("pull interrupted (%w); %s kept in %s: run the same command again to resume", err, sizeString(j.hashed), j.part())
}

// openPart opens the .part file to append at off, or empties it when off is 0.
func (j *pullJob) openPart(off int64) (*os.File, error) {
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if off == 0 {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(j.part(), flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	return f, nil
}

// hashPart makes j.h cover exactly the first n bytes of the .part file, reading
// them again unless this process just wrote them.
func (j *pullJob) hashPart(n int64) error {
	if j.hashed == n {
		return nil
	}
	j.h.Reset()
	j.hashed = 0
	if n == 0 {
		return nil
	}
	f, err := os.Open(j.part())
	if err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	defer f.Close()
	got, err := io.Copy(j.h, io.LimitReader(f, n))
	j.hashed = got
	if err == nil && got != n {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return fmt.Errorf("pull: reading %s: %w", j.part(), err)
	}
	return nil
}

// restart drops the partial file so that the next attempt starts from zero.
func (j *pullJob) restart() error {
	if err := os.Remove(j.part()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pull: %w", err)
	}
	j.h.Reset()
	j.hashed = 0
	return errRestart
}

func (j *pullJob) readMeta() error {
	raw, err := os.ReadFile(j.metaPath())
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, &j.meta)
}

func (j *pullJob) writeMeta() error {
	raw, err := json.Marshal(j.meta)
	if err != nil {
		return err
	}
	if err := os.WriteFile(j.metaPath(), raw, 0o644); err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	return nil
}

// discard removes every trace of the download.
func (j *pullJob) discard() {
	os.Remove(j.part())
	os.Remove(j.metaPath())
}

// announced is the SHA-256 the server gives for the file, if any: model hubs
// send it as the ETag (or X-Linked-Etag) of LFS files.
func (j *pullJob) announced(h http.Header) string {
	if d := tagDigest(h.Get("X-Linked-Etag")); d != "" {
		return d
	}
	if j.linked != "" {
		return j.linked
	}
	return tagDigest(h.Get("ETag"))
}

// tagDigest returns the SHA-256 in a strong entity tag, or "".
func tagDigest(tag string) string {
	if len(tag) < 2 || tag[0] != '"' || tag[len(tag)-1] != '"' {
		return ""
	}
	if d := tag[1 : len(tag)-1]; isSHA256Hex(d) {
		return strings.ToLower(d)
	}
	return ""
}

// validator is what If-Range may carry: a strong ETag, else Last-Modified.
func validator(h http.Header) string {
	if tag := h.Get("ETag"); strings.HasPrefix(tag, `"`) {
		return tag
	}
	return h.Get("Last-Modified")
}

// parseContentRange parses "bytes START-END/TOTAL" and "bytes */TOTAL"; start
// is -1 for the latter and total is -1 when the server writes "*".
func parseContentRange(s string) (start, end, total int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	total = -1
	if tot != "*" {
		t, err := strconv.ParseUint(tot, 10, 63)
		if err != nil {
			return 0, 0, 0, false
		}
		total = int64(t)
	}
	if rng == "*" {
		return -1, -1, total, total >= 0
	}
	a, b, found := strings.Cut(rng, "-")
	s64, err1 := strconv.ParseUint(a, 10, 63)
	e64, err2 := strconv.ParseUint(b, 10, 63)
	if !found || err1 != nil || err2 != nil || e64 < s64 || (total >= 0 && int64(e64) >= total) {
		return 0, 0, 0, false
	}
	return int64(s64), int64(e64), total, true
}

// finish checks the digest and the format, then moves the file into place.
func (p *puller) finish(j *pullJob, m *meter) (string, error) {
	got := hex.EncodeToString(j.h.Sum(nil))
	want, from := j.want, "--sha256"
	if want == "" {
		want, from = j.meta.SHA256, "the server's digest"
	}
	if want != "" && got != want {
		j.discard()
		return "", fmt.Errorf("pull %s: SHA-256 mismatch: got %s, %s says %s; the download was deleted", j.display, got, from, want)
	}
	f, err := gguf.Open(j.part())
	if err != nil {
		j.discard()
		return "", fmt.Errorf("pull %s: not a GGUF file, deleted: %w", j.display, err)
	}
	f.Close()
	if err := os.Rename(j.part(), j.final()); err != nil {
		return "", fmt.Errorf("pull: %w", err)
	}
	os.Remove(j.metaPath())
	check := "not checked: pass --sha256 to check it"
	if want != "" {
		check = "matches " + from
	}
	fmt.Fprintf(p.stderr, "aigrid: pulled %s (%s%s); SHA-256 %s (%s)\n", j.final(), sizeString(j.hashed), m.summary(), got, check)
	return j.final(), nil
}

// meter shows a download's progress on a terminal, a few times a second.
type meter struct {
	w     io.Writer
	tty   bool
	now   func() time.Time
	began time.Time
	got   int64 // bytes received by this process
	done  int64 // bytes of the file on disk
	total int64
	shown time.Time
	dirty bool
}

const meterTick = 250 * time.Millisecond

func (m *meter) start(done, total int64) { m.done, m.total = done, total }

func (m *meter) add(n int) {
	m.got += int64(n)
	m.done += int64(n)
	if !m.tty {
		return
	}
	now := m.now()
	if now.Sub(m.shown) < meterTick {
		return
	}
	m.shown = now
	line := sizeString(m.done)
	rate := m.rate(now)
	if m.total > 0 {
		line += fmt.Sprintf(" / %s (%d%%)", sizeString(m.total), m.done*100/m.total)
	}
	if rate > 0 {
		line += fmt.Sprintf("  %s/s", sizeString(int64(rate)))
		if m.total > m.done {
			line += fmt.Sprintf("  %s left", time.Duration(float64(m.total-m.done)/rate*float64(time.Second)).Round(time.Second))
		}
	}
	fmt.Fprintf(m.w, "\r%s\033[K", line)
	m.dirty = true
}

// rate is bytes a second received by this process.
func (m *meter) rate(now time.Time) float64 {
	if s := now.Sub(m.began).Seconds(); s > 0 {
		return float64(m.got) / s
	}
	return 0
}

// clear erases the progress line before other output.
func (m *meter) clear() {
	if m.dirty {
		fmt.Fprint(m.w, "\r\033[K")
		m.dirty = false
	}
}

func (m *meter) summary() string {
	if m.got == 0 {
		return ""
	}
	now := m.now()
	return fmt.Sprintf(", %s received in %s at %s/s", sizeString(m.got), now.Sub(m.began).Round(time.Millisecond), sizeString(int64(m.rate(now))))
}

// sizeString writes a byte count in binary units.
func sizeString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}
