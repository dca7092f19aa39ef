package main

import (
	"aigrid/internal/serveproc"
	"bytes"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// gatewayTarget is the metered/unmetered throughput ratio the gateway must keep.
const gatewayTarget = 0.9

// mockChunks is how many content chunks the mock's completion has.
const mockChunks = 32

// startMock serves a fixed chat completion with its usage: streamed when
// the request asks for a stream, as one JSON body otherwise.
func startMock() *httptest.Server {
	var stream, whole bytes.Buffer
	var text strings.Builder
	stream.WriteString(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"fast","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n")
	for i := 0; i < mockChunks; i++ {
		fmt.Fprintf(&stream, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"fast","choices":[{"index":0,"delta":{"content":"word%d "},"finish_reason":null}]}`+"\n\n", i)
		fmt.Fprintf(&text, "word%d ", i)
	}
	stream.WriteString(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"fast","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n")
	usage := fmt.Sprintf(`{"prompt_tokens":8,"completion_tokens":%d,"total_tokens":%d}`, mockChunks, mockChunks+8)
	stream.WriteString(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"fast","choices":[],"usage":` + usage + "}\n\n")
	stream.WriteString("data: [DONE]\n\n")
	fmt.Fprintf(&whole, `{"id":"c","object":"chat.completion","created":1,"model":"fast","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":%s}`,
		text.String(), usage)

	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		if bytes.Contains(raw, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Write(stream.Bytes())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(whole.Bytes())
	})
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"object":"list","data":[{"id":"fast","object":"model"}]}`)
	})
	return httptest.NewServer(mux)
}

// benchKey is the bench tenant's API key.
const benchKey = "sk-bench-tenant-0001"

// adminKey is the bench grid's admin key, for fetching the servers' profiles.
const adminKey = "sk-admin-bench-000001"

// gridConfig is the configuration both aigrid processes start with: one
// prepaid tenant with a big balance on the tariff, and limits high
// enough that every check runs and none refuses.
func gridConfig(upstream string) string {
	return fmt.Sprintf(`admin_keys: [%s]
server: {log_level: error}
currency: KES
tariffs:
  - name: public
    blocks:
      - {up_to: 200000, input: 0, output: 0}
      - {up_to: 5000000, input: 20, output: 60}
      - {input: 30, output: 90}
    off_peak: {from: "22:00", to: "06:00", factor: 0.5}
providers:
  - name: mock
    base_url: %s
    offers:
      - {model: fast, serves: [chat], max_concurrency: 4096, price: {input: 5, output: 10}}
tenants:
  - name: bench
    tariff: public
    account: {type: prepaid, balance: 1000000000}
    limits: {rpm: %d, tpm: %d, tokens_per_month: %d}
    keys: [%s]
`, adminKey, upstream, benchLimits.RPM, benchLimits.TPM, benchLimits.TokensPerMonth, benchKey)
}

// aigridProcess is a running `aigrid serve` and its data directory, whose
// ledger is read once it has stopped.
type aigridProcess struct {
	*serveproc.Process
	dataDir string
}

// startAigrid starts `aigrid serve` with the config in a data directory of
// its own; extra flags (--unmetered) are passed on.
func startAigrid(bin, dataDir, config string, extra ...string) (*aigridProcess, error) {
	p, err := serveproc.Start(bin, dataDir, config, extra...)
	if err != nil {
		return nil, err
	}
	return &aigridProcess{Process: p, dataDir: dataDir}, nil
}

var client = &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 4096, MaxIdleConns: 4096}}

// gateway is one gateway under load, with what clients got from it over
// every load run (warm-ups included), to check against its ledger.
type gateway struct {
	name, url, key string
	// profiles, when set, is a directory that receives the server's CPU
	// profile over the first round of each comparison.
	profiles string
	// pid, when not 0, is the server's process, whose CPU time is read.
	pid        int
	ok, errors atomic.Int64
}

// loadResult is one measurement of a gateway.
type loadResult struct {
	Bench       string  `json:"bench"`
	Mode        string  `json:"mode"`
	Setup       string  `json:"setup"`
	Concurrency int     `json:"concurrency"`
	Requests    int64   `json:"requests"`
	Seconds     float64 `json:"seconds"`
	RPS         float64 `json:"rps"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	Errors      int64   `json:"errors"`
	// ServerCPUus is the server process's CPU time (user and system) per
	// request, when it runs in its own process.
	ServerCPUus float64 `json:"server_cpu_us_per_request,omitempty"`
	// ClientCPUus is this process's CPU time (the clients and the mock
	// upstream) per request.
	ClientCPUus float64 `json:"client_cpu_us_per_request"`
	// IdleShare is the share of the machine's CPU time left idle: above a
	// few percent, the clients could not keep the machine busy, and the
	// measurement is of latency rather than of throughput.
	IdleShare float64 `json:"idle_share"`
	// The metered server's journal over the run, from its /metrics: mean
	// settlements per sync, mean sync and settle wait.
	MeanGroup float64 `json:"journal_mean_group,omitempty"`
	SyncMs    float64 `json:"journal_sync_mean_ms,omitempty"`
	SettleMs  float64 `json:"settle_mean_ms,omitempty"`
	// The server's heap allocations per request, from the Go runtime's
	// series on /metrics: garbage a call leaves for the collector.
	ServerAllocs     float64 `json:"server_allocs_per_request"`
	ServerAllocBytes float64 `json:"server_alloc_bytes_per_request"`
	server           serverStats
	lat              []float64
	cpu              time.Duration
	client           time.Duration
	idle             cpuTimes
}

// add merges another round of the same setup.
func (r *loadResult) add(o loadResult) {
	r.Requests += o.Requests
	r.Seconds += o.Seconds
	r.Errors += o.Errors
	r.lat = append(r.lat, o.lat...)
	r.cpu += o.cpu
	r.client += o.client
	r.idle.idle += o.idle.idle
	r.idle.total += o.idle.total
	r.server.add(o.server, 1)
	r.summarize()
}

func (r *loadResult) summarize() {
	r.RPS = round(float64(r.Requests) / r.Seconds)
	r.P50ms, r.P99ms = pct(r.lat, 50), pct(r.lat, 99)
	if r.cpu > 0 && r.Requests > 0 {
		r.ServerCPUus = round(float64(r.cpu.Microseconds()) / float64(r.Requests))
	}
	if r.Requests > 0 {
		r.ClientCPUus = round(float64(r.client.Microseconds()) / float64(r.Requests))
	}
	if r.idle.total > 0 {
		r.IdleShare = round(float64(r.idle.idle) / float64(r.idle.total))
	}
	if j := r.server; j.syncs > 0 && j.settles > 0 {
		r.MeanGroup = round(j.grouped / j.syncs)
		r.SyncMs = round(1000 * j.syncSeconds / j.syncs)
		r.SettleMs = round(1000 * j.settleSeconds / j.settles)
	}
	if r.Requests > 0 {
		r.ServerAllocs = round(r.server.mallocs / float64(r.Requests))
		r.ServerAllocBytes = round(r.server.allocBytes / float64(r.Requests))
	}
}

// serverStats are the sums of a server's journal series (a metered
// server's; an unmetered one has none) and of its heap allocations.
type serverStats struct {
	syncs, grouped, syncSeconds, settles, settleSeconds float64
	mallocs, allocBytes                                 float64
}

// add adds o times sign to j.
func (j *serverStats) add(o serverStats, sign float64) {
	j.syncs += sign * o.syncs
	j.grouped += sign * o.grouped
	j.syncSeconds += sign * o.syncSeconds
	j.settles += sign * o.settles
	j.settleSeconds += sign * o.settleSeconds
	j.mallocs += sign * o.mallocs
	j.allocBytes += sign * o.allocBytes
}

// readServerStats reads a server's series from its /metrics.
func readServerStats(base string) serverStats {
	m, _ := serveproc.Metrics(base)
	return serverStats{syncs: m["aigrid_meter_journal_group_size_count"], grouped: m["aigrid_meter_journal_group_size_sum"],
		syncSeconds: m["aigrid_meter_journal_sync_seconds_sum"], settles: m["aigrid_meter_settle_seconds_count"],
		settleSeconds: m["aigrid_meter_settle_seconds_sum"],
		mallocs:       m["go_memstats_mallocs_total"], allocBytes: m["go_memstats_alloc_bytes_total"]}
}

// cpuTimes is the machine's idle and total CPU time, in clock ticks, from
// the first line of /proc/stat.
type cpuTimes struct{ idle, total int64 }

func machineCPU() cpuTimes {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	var t cpuTimes
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i < 8 { // user nice system idle iowait irq softirq steal; guest is inside user
			t.total += n
		}
		if i == 3 || i == 4 { // idle, iowait
			t.idle += n
		}
	}
	return t
}

// load runs clients closed-loop clients against g for d or until limit
// requests in all (0: no limit), each reading whole responses.
func load(g *gateway, stream bool, clients int, limit int64, d time.Duration) loadResult {
	body := []byte(`{"model":"chat","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`)
	if stream {
		body = []byte(`{"model":"chat","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`)
	}
	var mu sync.Mutex
	var lat []float64
	var issued, errs atomic.Int64
	start := time.Now()
	stop := start.Add(d)
	var cpu0 time.Duration
	if g.pid != 0 {
		cpu0 = serveproc.CPUTime(g.pid)
	}
	client0, machine0 := serveproc.CPUTime(os.Getpid()), machineCPU()
	server0 := readServerStats(g.url)
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []float64
			for time.Now().Before(stop) && (limit == 0 || issued.Add(1) <= limit) {
				t0 := time.Now()
				if err := request(g, body, stream); err != nil {
					errs.Add(1)
					g.errors.Add(1)
					continue
				}
				g.ok.Add(1)
				mine = append(mine, ms(time.Since(t0)))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	r := loadResult{Bench: "gateway", Setup: g.name, Concurrency: clients, Seconds: time.Since(start).Seconds(), Errors: errs.Load(), lat: lat}
	r.Requests = int64(len(lat))
	r.server = readServerStats(g.url)
	r.server.add(server0, -1)
	if g.pid != 0 {
		r.cpu = serveproc.CPUTime(g.pid) - cpu0
	}
	r.client = serveproc.CPUTime(os.Getpid()) - client0
	machine := machineCPU()
	r.idle = cpuTimes{machine.idle - machine0.idle, machine.total - machine0.total}
	r.summarize()
	return r
}

// request sends one chat completion and reads all of it; a response counts
// only when it is complete: the stream's [DONE], or a body with its usage.
func request(g *gateway, body []byte, stream bool) error {
	req, _ := http.NewRequest("POST", g.url+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+g.key)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d: %.200s", resp.StatusCode, raw)
	}
	if stream {
		if !bytes.HasSuffix(raw, []byte("data: [DONE]\n\n")) {
			return fmt.Errorf("stream ended without [DONE]")
		}
	} else if !bytes.Contains(raw, []byte(`"completion_tokens":`)) {
		return fmt.Errorf("response without usage: %.200s", raw)
	}
	return nil
}

// compare loads the metered and the unmetered gateway in alternating
// rounds (so that a noisy neighbour hurts both alike) after a warm-up, and
// returns both sums. The ratio is metered over unmetered requests/s.
func compare(metered, unmetered *gateway, stream bool, clients, rounds int, limit int64, d time.Duration) (m, u loadResult, ratio float64) {
	mode := "non_streaming"
	if stream {
		mode = "streaming"
	}
	warm := min(d, time.Second)
	load(unmetered, stream, clients, limit, warm)
	load(metered, stream, clients, limit, warm)
	m = loadResult{Bench: "gateway", Mode: mode, Setup: metered.name, Concurrency: clients}
	u = loadResult{Bench: "gateway", Mode: mode, Setup: unmetered.name, Concurrency: clients}
	for i := 0; i < rounds; i++ {
		if i == 0 {
			u.add(profiled(unmetered, mode, stream, clients, limit, d))
			m.add(profiled(metered, mode, stream, clients, limit, d))
		} else if i%2 == 0 {
			u.add(load(unmetered, stream, clients, limit, d))
			m.add(load(metered, stream, clients, limit, d))
		} else {
			m.add(load(metered, stream, clients, limit, d))
			u.add(load(unmetered, stream, clients, limit, d))
		}
	}
	m.Seconds, u.Seconds = round(m.Seconds), round(u.Seconds)
	if u.RPS > 0 {
		ratio = round(m.RPS / u.RPS)
	}
	return m, u, ratio
}

// profiled is load, with the server's CPU profile over the run written to
// g.profiles when that is set, and this process's (the clients and the
// mock upstream) beside it, with "-clients" in its name: a metered call
// costs the clients too, in the headers they read.
func profiled(g *gateway, mode string, stream bool, clients int, limit int64, d time.Duration) loadResult {
	if g.profiles == "" {
		return load(g, stream, clients, limit, d)
	}
	done := make(chan error, 1)
	name := filepath.Join(g.profiles, fmt.Sprintf("%s-%s-%d", g.name, mode, clients))
	go func() {
		done <- serveproc.SaveProfile(g.url, adminKey, name+".pprof", fmt.Sprintf("profile?seconds=%d", max(1, int(d.Seconds()))))
	}()
	own, err := os.Create(name + "-clients.pprof")
	if err == nil {
		err = pprof.StartCPUProfile(own)
	}
	if err != nil {
		log.Printf("profile of the clients: %v", err)
	}
	r := load(g, stream, clients, limit, d)
	if err == nil {
		pprof.StopCPUProfile()
		own.Close()
	}
	if err := <-done; err != nil {
		log.Printf("profile of %s: %v", g.name, err)
	}
	return r
}
