// Package serveproc runs a built aigrid binary as `aigrid serve` on a free
// loopback port, for the benchmarks and the crash test, which need a real
// process (its own memory, CPU time and a kill -9).
package serveproc

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Build builds aigrid as it ships, one static binary without cgo and with
// the engine's vector kernels, into dir and returns its path. It must run
// inside the module.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "aigrid")
	cmd := exec.Command("go", "build", "-o", bin, "aigrid/cmd/aigrid")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOEXPERIMENT=simd")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building aigrid (run inside the module): %v\n%s", err, out)
	}
	return bin, nil
}

// Process is a running `aigrid serve`.
type Process struct {
	URL  string
	cmd  *exec.Cmd
	once sync.Once
	err  error
}

// Start runs bin serve with the data directory and config file, plus extra
// flags, on a free loopback port, and waits until /readyz answers 200.
func Start(bin, dataDir, config string, extra ...string) (*Process, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	args := append([]string{"serve", "--data", dataDir, "--listen", addr, "--config", config}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{URL: "http://" + addr, cmd: cmd}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(p.URL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
	}
	p.Kill()
	return nil, fmt.Errorf("aigrid serve %v did not become ready within 30s", extra)
}

// PID is the process's id, for reading its resident set and CPU time.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Stop shuts the server down as an operator would (SIGINT) and waits.
func (p *Process) Stop() error { return p.end(os.Interrupt) }

// Kill ends the server with SIGKILL: no shutdown, no flush.
func (p *Process) Kill() error { return p.end(os.Kill) }

func (p *Process) end(sig os.Signal) error {
	p.once.Do(func() {
		p.cmd.Process.Signal(sig)
		p.err = p.cmd.Wait()
	})
	return p.err
}

// SaveProfile writes one of the server's profiles (see /admin/debug/pprof)
// to path: profile is such as "heap?gc=1" or "profile?seconds=5".
func SaveProfile(base, adminKey, path, profile string) error {
	req, err := http.NewRequest("GET", base+"/admin/debug/pprof/"+profile, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", profile, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", profile, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Metrics reads the server's unlabelled series from /metrics, by name (a
// histogram's _sum and _count among them).
func Metrics(base string) (map[string]float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: %s", resp.Status)
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	series := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			series[name] = v
		}
	}
	return series, nil
}
