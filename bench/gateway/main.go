// Command gateway measures what aigrid adds to a streamed chat completion, side
// by side with its peers in one run, on loopback: clients straight to a mock
// upstream, through a bare httputil.ReverseProxy, and through aigrid (a real
// `aigrid serve` process, with authentication and dispatch on). It prints one
// JSON line per setup, the ratios against the bare proxy, and aigrid's
// resident memory while it holds many concurrent streams.
//
//	go run ./bench/gateway [-duration 5s] [-concurrency 32] [-max-concurrency 128] [-streams 1000] [-unmetered] [-memory-only] [-trace FILE]
package main

import (
	"aigrid/internal/serveproc"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	role := flag.String("role", "bench", "bench, or proxy (internal: the bare reverse proxy process)")
	upstream := flag.String("upstream", "", "proxy role: the upstream base URL")
	listen := flag.String("listen", "127.0.0.1:0", "proxy role: address to listen on")
	duration := flag.Duration("duration", 5*time.Second, "how long each measurement runs")
	concurrency := flag.Int("concurrency", 32, "clients in the fixed-concurrency measurement")
	maxConcurrency := flag.Int("max-concurrency", 128, "clients in the maximum-throughput measurement")
	streams := flag.Int("streams", 1000, "concurrent slow streams held through aigrid for the memory measurement")
	chunks := flag.Int("chunks", 32, "chunks in the mock's completion")
	unmetered := flag.Bool("unmetered", false, "run aigrid without the meter, to tell the meter's cost apart")
	memoryOnly := flag.Bool("memory-only", false, "measure only the resident sets, in processes that served nothing before the streams")
	cpuProfile := flag.String("cpuprofile", "", "write aigrid's CPU profile during its fixed-concurrency load to this file (go tool pprof FILE)")
	heapProfile := flag.String("heapprofile", "", "write aigrid's heap profile while it holds the streams to this file")
	traceFile := flag.String("trace", "", "write aigrid's execution trace over the start of the held streams to this file (go tool trace FILE)")
	flag.Parse()
	if *role == "proxy" {
		runProxy(*upstream, *listen)
		return
	}
	if err := run(*duration, *concurrency, *maxConcurrency, *streams, *chunks, *unmetered, *memoryOnly, *cpuProfile, *heapProfile, *traceFile); err != nil {
		log.Fatal(err)
	}
}

// runProxy serves a bare reverse proxy to the upstream, flushing every write,
// as a streaming gateway with nothing else to do would.
func runProxy(upstream, listen string) {
	target, err := url.Parse(upstream)
	if err != nil {
		log.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1
	proxy.Transport = &http.Transport{MaxIdleConnsPerHost: 4096, MaxIdleConns: 4096}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr().String())
	log.Fatal(http.Serve(ln, proxy))
}

// result is one setup's measurement.
type result struct {
	Setup       string  `json:"setup"`
	Concurrency int     `json:"concurrency"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	TTFTP50ms   float64 `json:"ttft_p50_ms"`
	TTFTP99ms   float64 `json:"ttft_p99_ms"`
	RPS         float64 `json:"rps"`
	MaxRPS      float64 `json:"max_rps"`
	Errors      int64   `json:"errors"`
	// CPUus is the gateway process's CPU time (user and system) per request
	// at the fixed concurrency: unlike latency and throughput, it hardly
	// moves with what else the machine runs.
	CPUus    float64 `json:"cpu_us_per_request,omitempty"`
	requests int
}

func run(duration time.Duration, concurrency, maxConcurrency, streams, chunks int, unmetered, memoryOnly bool, cpuProfile, heapProfile, traceFile string) error {
	mock, err := startMock(chunks)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "aigrid-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	proxyAddr, proxyPID, stopProxy, err := startProxy(mock)
	if err != nil {
		return err
	}
	defer stopProxy()
	grid, err := startAigrid(work, mock+"/v1", streams, unmetered)
	if err != nil {
		return err
	}
	defer grid.Stop()

	if !memoryOnly {
		if err := latency(mock, "http://"+proxyAddr, proxyPID, grid, duration, concurrency, maxConcurrency, cpuProfile); err != nil {
			return err
		}
	}
	proxyBase, proxyRSS, proxyHeld, err := holdStreams("http://"+proxyAddr, "", proxyPID, streams, nil)
	if err != nil {
		return err
	}
	runtimeMemory(grid.URL, "before the streams")
	var traced chan error
	if traceFile != "" {
		traced = make(chan error, 1)
		go func() { traced <- serveproc.SaveProfile(grid.URL, adminKey, traceFile, "trace?seconds=3") }()
		time.Sleep(100 * time.Millisecond) // let the trace start before the streams
	}
	base, rss, held, err := holdStreams(grid.URL, grid.key, grid.PID(), streams, func() {
		runtimeMemory(grid.URL, "while holding the streams")
		if heapProfile != "" {
			if err := serveproc.SaveProfile(grid.URL, adminKey, heapProfile, "heap?gc=1"); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}
	})
	if err != nil {
		return err
	}
	if traced != nil {
		if err := <-traced; err != nil {
			return err
		}
	}
	mib := func(b int64) float64 { return round(float64(b) / (1 << 20)) }
	perStream := func(before, during resident, n int64) float64 {
		if n == 0 {
			return 0
		}
		return round(float64(during.total-before.total) / float64(n) / 1024)
	}
	line, _ := json.Marshal(map[string]any{"memory": "resident set while holding concurrent slow streams",
		"streams_held_aigrid": held, "rss_mib_aigrid": mib(rss.total), "target_mib": "< 64",
		"rss_anon_mib_aigrid": mib(rss.anon), "rss_file_mib_aigrid": mib(rss.file),
		"streams_held_reverse_proxy": proxyHeld, "rss_mib_reverse_proxy": mib(proxyRSS.total),
		"rss_ratio": round(float64(rss.total) / float64(proxyRSS.total)),
		// Before the streams: the program, and what the load phases left behind.
		"rss_mib_aigrid_before": mib(base.total), "rss_mib_reverse_proxy_before": mib(proxyBase.total),
		"rss_anon_mib_aigrid_before": mib(base.anon), "rss_file_mib_aigrid_before": mib(base.file),
		"kib_per_stream_aigrid": perStream(base, rss, held), "kib_per_stream_reverse_proxy": perStream(proxyBase, proxyRSS, proxyHeld)})
	fmt.Println(string(line))
	return nil
}

// latency loads each setup with closed-loop clients streaming the fast
// completion and prints one line per setup and the ratios. With cpuProfile
// set, aigrid's CPU profile over its fixed-concurrency load is written there.
func latency(mock, proxyURL string, proxyPID int, grid *aigridProcess, duration time.Duration, concurrency, maxConcurrency int, cpuProfile string) error {
	setups := []struct {
		name, url, key string
		pid            int // the gateway's process; 0 for none
	}{
		{"direct", mock, "", 0},
		{"reverse_proxy", proxyURL, "", proxyPID},
		{"aigrid", grid.URL, grid.key, grid.PID()},
	}
	results := map[string]result{}
	for _, s := range setups {
		load(s.url, s.key, "fast", concurrency, time.Second) // warm up connections and caches
		var profiled chan error
		if s.name == "aigrid" && cpuProfile != "" {
			profiled = make(chan error, 1)
			go func() {
				profiled <- serveproc.SaveProfile(grid.URL, adminKey, cpuProfile, fmt.Sprintf("profile?seconds=%d", max(1, int(duration.Seconds()))))
			}()
		}
		cpu0 := serveproc.CPUTime(s.pid)
		r := load(s.url, s.key, "fast", concurrency, duration)
		if cpu := serveproc.CPUTime(s.pid) - cpu0; cpu > 0 && r.requests > 0 {
			r.CPUus = round(float64(cpu.Microseconds()) / float64(r.requests))
		}
		if profiled != nil {
			if err := <-profiled; err != nil {
				return err
			}
		}
		r.MaxRPS = load(s.url, s.key, "fast", maxConcurrency, duration).RPS
		r.Setup = s.name
		results[s.name] = r
		line, _ := json.Marshal(r)
		fmt.Println(string(line))
	}

	direct, proxy, ag := results["direct"], results["reverse_proxy"], results["aigrid"]
	proxyAdded := proxy.P50ms - direct.P50ms
	aigridAdded := ag.P50ms - direct.P50ms
	ratios := map[string]any{
		"ratios":                          "aigrid against the bare reverse proxy",
		"added_p50_ms_reverse_proxy":      round(proxyAdded),
		"added_p50_ms_aigrid":             round(aigridAdded),
		"added_p50_ratio":                 round(aigridAdded / proxyAdded),
		"added_p50_ratio_target":          "<= 1.5",
		"max_rps_ratio":                   round(ag.MaxRPS / proxy.MaxRPS),
		"max_rps_ratio_target":            ">= 0.7",
		"added_ttft_p50_ms_aigrid":        round(ag.TTFTP50ms - direct.TTFTP50ms),
		"added_ttft_p50_ms_reverse_proxy": round(proxy.TTFTP50ms - direct.TTFTP50ms),
		"cpu_per_request_ratio":           round(ag.CPUus / proxy.CPUus),
	}
	line, _ := json.Marshal(ratios)
	fmt.Println(string(line))
	return nil
}

// longChunks is the length of the "long" completion, which tells the cost of
// one more chunk apart from the cost of one more request.
const longChunks = 512

// streamBody is an upstream's SSE stream of a completion in n content chunks.
func streamBody(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"word%d "},"finish_reason":null}]}`+"\n\n", i)
	}
	b.WriteString(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n")
	fmt.Fprintf(&b, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":8,"completion_tokens":%d,"total_tokens":%d}}`+"\n\n", n, n+8)
	b.WriteString("data: [DONE]\n\n")
	return b.Bytes()
}

func round(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }

// startMock serves a fixed streamed completion. Model "fast" streams it at
// once; "long" streams longChunks at once; "slow" sends a chunk a second, to
// hold streams open.
func startMock(chunks int) (string, error) {
	body := streamBody(chunks)
	long := streamBody(longChunks)
	events := bytes.SplitAfter(body, []byte("\n\n"))

	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		switch {
		case bytes.Contains(raw, []byte(`"model":"long"`)):
			w.Write(long)
			return
		case !bytes.Contains(raw, []byte(`"model":"slow"`)):
			w.Write(body)
			return
		}
		flusher := w.(http.Flusher)
		for _, e := range events {
			if _, err := w.Write(e); err != nil {
				return
			}
			flusher.Flush()
			select {
			case <-time.After(time.Second):
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"object":"list","data":[{"id":"fast","object":"model"},{"id":"long","object":"model"},{"id":"slow","object":"model"}]}`)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go http.Serve(ln, mux)
	return "http://" + ln.Addr().String(), nil
}

func startProxy(upstream string) (addr string, pid int, stop func(), err error) {
	self, err := os.Executable()
	if err != nil {
		return "", 0, nil, err
	}
	cmd := exec.Command(self, "-role", "proxy", "-upstream", upstream)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	addr, err = bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		return "", 0, nil, fmt.Errorf("proxy did not start: %v", err)
	}
	return strings.TrimSpace(addr), cmd.Process.Pid, func() { cmd.Process.Kill(); cmd.Wait() }, nil
}

// aigridProcess is a running `aigrid serve` and its tenant's key.
type aigridProcess struct {
	*serveproc.Process
	key string
}

// adminKey is the bench grid's operator key.
const adminKey = "sk-admin-bench-000001"

// startAigrid builds and starts a real aigrid serve with a tenant and the mock as provider.
func startAigrid(work, upstream string, streams int, unmetered bool) (*aigridProcess, error) {
	bin, err := serveproc.Build(work)
	if err != nil {
		return nil, err
	}
	key := "sk-bench-tenant-0001"
	config := fmt.Sprintf(`admin_keys: [%s]
server: {log_level: error}
providers:
  - name: mock
    base_url: %s
    offers:
      - {model: fast, serves: [chat], max_concurrency: %d}
      - {model: slow, serves: [slow], max_concurrency: %d}
tenants:
  - name: bench
    keys: [%s]
`, adminKey, upstream, 4*streams, 2*streams, key)
	cfg := filepath.Join(work, "grid.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		return nil, err
	}
	var extra []string
	if unmetered {
		extra = append(extra, "--unmetered")
	}
	p, err := serveproc.Start(bin, filepath.Join(work, "data"), cfg, extra...)
	if err != nil {
		return nil, err
	}
	return &aigridProcess{Process: p, key: key}, nil
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4096, MaxIdleConns: 4096, MaxConnsPerHost: 0}}

// load runs `clients` closed-loop clients for d, each reading whole streams.
func load(base, key, model string, clients int, d time.Duration) result {
	body := []byte(`{"model":"` + model + `","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if model == "fast" && key != "" {
		body = []byte(`{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	}
	var mu sync.Mutex
	var lat, ttft []float64
	var errs atomic.Int64
	stop := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var myLat, myTTFT []float64
			for time.Now().Before(stop) {
				l, t, err := stream(base, key, body)
				if err != nil {
					errs.Add(1)
					continue
				}
				myLat, myTTFT = append(myLat, l), append(myTTFT, t)
			}
			mu.Lock()
			lat, ttft = append(lat, myLat...), append(ttft, myTTFT...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	return result{Concurrency: clients, P50ms: pct(lat, 50), P99ms: pct(lat, 99), TTFTP50ms: pct(ttft, 50), TTFTP99ms: pct(ttft, 99),
		RPS: round(float64(len(lat)) / elapsed), Errors: errs.Load(), requests: len(lat)}
}

// stream sends one streamed completion and reads it to the end; it returns the
// latency and the time to the first content byte, in milliseconds.
func stream(base, key string, body []byte) (float64, float64, error) {
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		io.Copy(io.Discard, resp.Body)
		return 0, 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	r := bufio.NewReader(resp.Body)
	var first time.Duration
	done := false
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 && first == 0 && bytes.HasPrefix(line, []byte("data:")) {
			first = time.Since(start)
		}
		if bytes.HasPrefix(line, []byte("data: [DONE]")) {
			done = true
		}
		if err != nil {
			break
		}
	}
	if !done {
		return 0, 0, fmt.Errorf("stream ended without [DONE]")
	}
	return ms(time.Since(start)), ms(first), nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	return round(xs[int(float64(len(xs)-1)*p/100)])
}

// holdStreams opens n slow streams through a gateway at once and reads its
// resident set before, and once they all have their first chunk.
// While they are held it calls during, if not nil.
func holdStreams(url, key string, pid, n int, during func()) (before, rss resident, held int64, err error) {
	if before, err = residentSet(pid); err != nil {
		return before, rss, 0, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var started atomic.Int64
	var wg sync.WaitGroup
	body := []byte(`{"model":"slow","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			r := bufio.NewReader(resp.Body)
			if _, err := r.ReadSlice('\n'); err == nil {
				started.Add(1)
			}
			io.Copy(io.Discard, r)
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for started.Load() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // let the streams settle
	rss, err = residentSet(pid)
	held = started.Load()
	if during != nil {
		during()
	}
	cancel()
	wg.Wait()
	return before, rss, held, err
}

// runtimeMemory prints where aigrid's memory goes, from its own /metrics.
func runtimeMemory(base, when string) {
	m, err := serveproc.Metrics(base)
	if err != nil {
		return
	}
	out := map[string]any{"memory_breakdown": "aigrid Go runtime " + when + " (MiB)", "goroutines": m["go_goroutines"]}
	for _, name := range []string{"heap_alloc", "next_gc", "heap_inuse", "stack_inuse", "sys", "heap_idle", "heap_released", "gc_sys", "other_sys", "mspan_inuse"} {
		out[name] = round(m["go_memstats_"+name+"_bytes"] / (1 << 20))
	}
	for _, name := range []string{"settle_seconds_sum", "settle_seconds_count", "journal_group_size_sum", "journal_group_size_count", "journal_sync_seconds_sum"} {
		out[name] = m["aigrid_meter_"+name]
	}
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
}

// resident is a process's resident set, in bytes: anonymous memory (the
// heap, stacks, SQLite's caches) apart from the pages of files mapped (the
// binary's code and data), which the kernel can drop and read again.
type resident struct{ total, anon, file int64 }

// residentSet reads a process's resident set from /proc.
func residentSet(pid int) (resident, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return resident{}, err
	}
	var r resident
	fields := map[string]*int64{"VmRSS:": &r.total, "RssAnon:": &r.anon, "RssFile:": &r.file}
	for _, line := range strings.Split(string(raw), "\n") {
		for name, v := range fields {
			if rest, ok := strings.CutPrefix(line, name); ok {
				kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				if err != nil {
					return resident{}, fmt.Errorf("pid %d: %s %v", pid, name, err)
				}
				*v = kb << 10
				delete(fields, name)
			}
		}
	}
	if len(fields) > 0 {
		return resident{}, fmt.Errorf("no VmRSS, RssAnon or RssFile for pid %d", pid)
	}
	return r, nil
}
