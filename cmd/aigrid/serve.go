package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"aigrid"
	"aigrid/api"
	"aigrid/config"
	"aigrid/dispatch"
	"aigrid/engine/tensor"
	"aigrid/internal/dirlock"
	gridmeter "aigrid/meter"
	"aigrid/provider/local"
	"aigrid/provider/openai"
	"aigrid/sqlite"
)

// Defaults of aigrid serve.
const (
	defaultDataDir = "aigrid-data"
	defaultListen  = "127.0.0.1:8080"
	defaultGrace   = 30 * time.Second
)

// Main is the grid server as the binary runs it; end-to-end tests start the
// same program in-process.
type Main struct {
	DataDir      string
	Listen       string
	ConfigPath   string
	Grace        time.Duration
	MaxBodyBytes int64
	Logger       *slog.Logger
	// Stdout receives what a person must see once, such as a new admin key.
	Stdout io.Writer

	// AdminKey is the admin key created on first start, if one was.
	AdminKey string
	// Threads computes each product of the embedded engine (0: every CPU).
	Threads int
	// KVBudget is each local model's key/value cache, in bytes (0: enough
	// for max_concurrency contexts, or the engine's default).
	KVBudget int64
	// Unmetered serves without the meter: no limits, balances or usage.
	// For measuring the meter's own cost, never for a grid that sells.
	Unmetered bool

	store      *sqlite.DB
	registry   *prometheus.Registry // the series of /metrics
	dispatcher *dispatch.Dispatcher
	meter      *gridmeter.Meter
	api        *api.Server
	http       *http.Server
	listener   net.Listener
	cancelBase context.CancelFunc
	served     chan error
	listeners  *packageListeners
	// dirLock holds the data directory for this server (see Run).
	dirLock *dirlock.Lock
}

// NewMain returns a Main with the defaults of aigrid serve.
func NewMain() *Main {
	return &Main{DataDir: defaultDataDir, Listen: defaultListen, Grace: defaultGrace, Stdout: os.Stdout,
		Logger: slog.New(slog.NewJSONHandler(os.Stderr, nil)), registry: prometheus.NewRegistry()}
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	m := NewMain()
	m.Stdout = stdout
	fs := flag.NewFlagSet("aigrid serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&m.DataDir, "data", m.DataDir, "data directory (created if missing)")
	fs.StringVar(&m.Listen, "listen", "", "address to listen on (default "+defaultListen+", or server.listen in the config)")
	fs.StringVar(&m.ConfigPath, "config", "", "YAML file to apply at start (see docs/configuration.md)")
	fs.DurationVar(&m.Grace, "grace", 0, "how long in-flight requests may finish at shutdown (default 30s, or server.shutdown_grace)")
	fs.Int64Var(&m.MaxBodyBytes, "max-body", 0, "request body limit in bytes (default 8 MiB, or server.max_body_bytes)")
	fs.IntVar(&m.Threads, "threads", 0, "threads of the embedded engine (default: every CPU)")
	kvBudget := fs.String("kv-budget", "", "key/value cache of each local model, such as 2GiB (default: max_concurrency contexts)")
	fs.BoolVar(&m.Unmetered, "unmetered", false, "serve without the meter (no limits, balances or usage): only to measure the meter's cost")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (default info, or server.log_level)")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve takes no arguments, got %q", fs.Args())
	}
	if *kvBudget != "" {
		b, err := config.ParseByteSize(*kvBudget)
		if err != nil {
			return fmt.Errorf("--kv-budget: %v", err)
		}
		m.KVBudget = int64(b)
	}
	if m.Threads < 0 {
		return fmt.Errorf("--threads must be 0 (every CPU) or more")
	}
	if err := m.Run(ctx, *logLevel, stderr); err != nil {
		return err
	}
	// The packages log through slog's default: the server's JSON lines, not
	// plain text among them. (Set here, not in Run, which tests run many of
	// in one process.)
	slog.SetDefault(m.Logger)
	fmt.Fprintf(stderr, "aigrid: serving on http://%s (data in %s)\n", m.Addr(), m.DataDir)
	select {
	case <-ctx.Done():
	case err := <-m.served:
		m.Close()
		return err
	}
	fmt.Fprintf(stderr, "aigrid: shutting down (in-flight requests have %s to finish)\n", m.Grace)
	return m.Close()
}

// Run opens the store, applies the configuration file and starts serving. It
// returns once the server listens; Close stops it.
func (m *Main) Run(ctx context.Context, logLevel string, logOut io.Writer) (err error) {
	var file *config.File
	if m.ConfigPath != "" {
		var err error
		if file, err = config.Load(m.ConfigPath); err != nil {
			return err
		}
		m.applyServerSettings(file, &logLevel)
	}
	if m.Listen == "" {
		m.Listen = defaultListen
	}
	if m.Grace <= 0 {
		m.Grace = defaultGrace
	}
	if logLevel != "" {
		var level slog.Level
		if err := level.UnmarshalText([]byte(logLevel)); err != nil {
			return fmt.Errorf("log level %q is not one of debug, info, warn, error", logLevel)
		}
		m.Logger = slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: level}))
	}

	// Before anything is read or written: a second server on this data
	// directory would apply and delete the first one's journal.
	if err := os.MkdirAll(m.DataDir, 0o700); err != nil {
		return fmt.Errorf("cannot create the data directory: %w", err)
	}
	if m.dirLock, err = dirlock.Take(filepath.Join(m.DataDir, "aigrid.lock"), "the data directory "+m.DataDir); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			m.dirLock.Release()
		}
	}()
	if err := m.openStore(); err != nil {
		return err
	}
	if file != nil {
		res, err := file.Apply(ctx, m.store)
		if err != nil {
			m.store.Close()
			return fmt.Errorf("applying %s: %w", m.ConfigPath, err)
		}
		for _, w := range res.Warnings {
			m.Logger.Warn("config", "file", m.ConfigPath, "warning", w)
		}
	}
	if err := m.ensureAdminKey(ctx); err != nil {
		m.store.Close()
		return err
	}
	if !m.Unmetered {
		if err := m.startMeter(ctx, file); err != nil {
			m.store.Close()
			return err
		}
	} else if left, _ := filepath.Glob(filepath.Join(m.journalDir(), "*.journal")); len(left) > 0 {
		m.Logger.Warn("the settlement journal holds calls of an earlier metered run; they reach the ledger at the next start with the meter", "segments", len(left))
	}

	var settings dispatch.Settings
	if file != nil {
		d := file.Dispatch
		settings = dispatch.Settings{MaxAttempts: d.MaxAttempts, Deadline: time.Duration(d.Deadline),
			QueueTimeout: time.Duration(d.QueueTimeout), MaxQueue: d.MaxQueue}
	}
	m.dispatcher = dispatch.New(m.newProvider, m.Logger, settings)
	if err := m.dispatcher.Load(ctx, m.store); err != nil {
		m.closeMeter()
		m.store.Close()
		return err
	}
	var meter aigrid.Meter
	if m.meter != nil {
		meter = m.meter
	}
	pkgs, public, listeners, err := newPackages(ctx, m.store, m.dispatcher, meter, file, m.Logger)
	if err != nil {
		m.dispatcher.Close()
		m.closeMeter()
		m.store.Close()
		return err
	}
	m.listeners = listeners
	// The API's ledger reads see every settled call; without a meter
	// there is no journal to apply.
	var store aigrid.Store = m.store
	if m.meter != nil {
		store = m.meter.SyncedStore(m.store)
	}
	m.api = api.New(api.Config{
		Store: store, Dispatcher: m.dispatcher, Providers: m.dispatcher, Explainer: m.dispatcher, Meter: m.meter,
		Packages: pkgs, Public: public, Logger: m.Logger, MaxBodyBytes: m.MaxBodyBytes, Ready: m.store.Ping,
		Registry: m.registry, Backup: func(ctx context.Context) (string, error) { return m.store.Backup(ctx, m.DataDir) },
	})

	ln, err := net.Listen("tcp", m.Listen)
	if err != nil {
		m.dispatcher.Close()
		m.closeMeter()
		m.store.Close()
		return fmt.Errorf("cannot listen on %s: %w", m.Listen, err)
	}
	m.listener = ln
	base, cancel := context.WithCancel(context.Background())
	m.cancelBase = cancel
	m.http = &http.Server{
		Handler:           m.api,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
	}
	m.served = make(chan error, 1)
	go func() {
		if err := m.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			m.served <- err
		}
	}()
	m.listeners.start()
	return nil
}

// startMeter starts the meter in the grid's currency and time zone. The
// ledger keeps amounts in minor units of one currency, so a grid whose ledger
// was kept in one currency refuses to start in another. Both are stored at
// the first start, and a later start whose file names neither (or has no
// file) keeps them: without them, a restart without --config would refuse to
// start (USD) or count months and off-peak hours in UTC.
func (m *Main) startMeter(ctx context.Context, file *config.File) error {
	storedCode, err := m.gridSetting(ctx, "currency")
	if err != nil {
		return err
	}
	cur := aigrid.Currency{Code: "USD", Exponent: 2}
	switch {
	case file != nil && file.Currency != "":
		if cur, err = file.CurrencyInfo(); err != nil {
			return err
		}
		if storedCode != "" && storedCode != cur.Code {
			return fmt.Errorf("the ledger in %s is kept in %q, and the configuration says %q: a grid keeps one currency", m.DataDir, storedCode, cur.Code)
		}
	case storedCode != "":
		if cur, err = aigrid.LookupCurrency(storedCode); err != nil {
			return err
		}
	}
	storedZone, err := m.gridSetting(ctx, "timezone")
	if err != nil {
		return err
	}
	loc := time.UTC
	switch {
	case file != nil && file.Timezone != "":
		if loc, err = file.Location(); err != nil {
			return err
		}
		if storedZone != "" && storedZone != loc.String() {
			m.Logger.Warn("the grid's time zone changes: months, days and off-peak hours are counted in the new one from now on; statements of past months are not rewritten",
				"was", storedZone, "now", loc.String())
		}
	case storedZone != "":
		if loc, err = time.LoadLocation(storedZone); err != nil {
			return fmt.Errorf("the grid's time zone %q, kept in %s, is not known to this system: name one with timezone: in the configuration", storedZone, m.DataDir)
		}
	}
	for name, value := range map[string]string{"currency": cur.Code, "timezone": loc.String()} {
		if err := m.putGridSetting(ctx, name, value); err != nil {
			return err
		}
	}
	m.meter, err = gridmeter.New(ctx, m.store, gridmeter.Settings{Currency: cur, Location: loc, Logger: m.Logger,
		JournalDir: m.journalDir(), Registerer: m.registry})
	if err != nil {
		return err
	}
	m.probeSync()
	return nil
}

// gridSetting reads a setting the grid keeps in its store ("currency",
// "timezone"), or "" when none was kept.
func (m *Main) gridSetting(ctx context.Context, name string) (string, error) {
	d, err := m.store.GetDoc(ctx, "grid", 0, name)
	if aigrid.ErrorCode(err) == aigrid.ENotFound {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var v string
	if err := json.Unmarshal(d.Body, &v); err != nil {
		return "", fmt.Errorf("the grid's %s kept in %s is not readable: %w", name, m.DataDir, err)
	}
	return v, nil
}

// putGridSetting keeps a setting of the grid in its store.
func (m *Main) putGridSetting(ctx context.Context, name, value string) error {
	body, _ := json.Marshal(value)
	return m.store.PutDoc(ctx, &aigrid.Doc{Package: "grid", ID: name, Body: body})
}

// probeSync tells the operator how fast the data directory's disk makes a
// write durable: every metered call waits for one such sync of the
// settlement journal (shared with the calls settled beside it) before it
// is answered, so a slow disk is worth knowing about at once.
func (m *Main) probeSync() {
	d, err := gridmeter.ProbeSync(m.DataDir, 5)
	switch {
	case err != nil:
		m.Logger.Warn("could not time the data directory's disk syncs", "error", err.Error())
	case d > gridmeter.SlowSync:
		m.Logger.Warn("the data directory's disk is slow to make a write durable, and every metered call waits for one "+
			"(shared with the calls settled beside it) before it is answered: a local SSD syncs in well under a millisecond",
			"sync", d.String(), "data", m.DataDir)
	default:
		m.Logger.Info("the data directory's disk makes a write durable in "+d.String(), "data", m.DataDir)
	}
}

// journalDir holds the meter's settlement journal.
func (m *Main) journalDir() string { return filepath.Join(m.DataDir, "journal") }

func (m *Main) closeMeter() {
	if m.meter != nil {
		m.meter.Close()
	}
}

// applyServerSettings takes the config file's server settings where no flag set them.
func (m *Main) applyServerSettings(f *config.File, logLevel *string) {
	s := f.Server
	if m.Listen == "" {
		m.Listen = s.Listen
	}
	if m.Grace <= 0 {
		m.Grace = time.Duration(s.ShutdownGrace)
	}
	if m.MaxBodyBytes <= 0 {
		m.MaxBodyBytes = int64(s.MaxBodyBytes)
	}
	if *logLevel == "" {
		*logLevel = s.LogLevel
	}
}

func (m *Main) openStore() error {
	if err := os.MkdirAll(m.DataDir, 0o700); err != nil {
		return fmt.Errorf("cannot create the data directory: %w", err)
	}
	store, err := sqlite.Open(filepath.Join(m.DataDir, "aigrid.db"))
	if err != nil {
		return err
	}
	m.store = store
	// A backup cut short by a crash left its copy behind.
	stale, _ := filepath.Glob(filepath.Join(m.DataDir, sqlite.BackupPattern))
	for _, p := range stale {
		os.Remove(p)
	}
	return nil
}

// ensureAdminKey creates and prints an admin key when the store has none, so
// that a new grid can be administered at once.
func (m *Main) ensureAdminKey(ctx context.Context) error {
	n, err := m.store.CountAdminKeys(ctx)
	if err != nil || n > 0 {
		return err
	}
	secret, err := createAdminKey(ctx, m.store)
	if err != nil {
		return err
	}
	m.AdminKey = secret
	fmt.Fprintf(m.Stdout, "Operator admin key (shown once; keep it safe, it is stored hashed):\n\n    %s\n\n", secret)
	return nil
}

func createAdminKey(ctx context.Context, store aigrid.KeyService) (string, error) {
	secret := aigrid.NewSecret("sk-admin-")
	k := &aigrid.Key{Admin: true, Name: "operator", Hint: aigrid.KeyHint(secret), Hash: aigrid.HashKey(secret)}
	if err := store.CreateKey(ctx, k); err != nil {
		return "", err
	}
	return secret, nil
}

// Addr returns the address the server listens on.
func (m *Main) Addr() string { return m.listener.Addr().String() }

// Close stops accepting requests, lets those in flight finish within the
// grace period, cuts the rest, and closes the store.
func (m *Main) Close() error {
	m.api.Drain()
	ctx, cancel := context.WithTimeout(context.Background(), m.Grace)
	defer cancel()
	err := m.http.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		m.Logger.Warn("grace period over: cutting the requests still in flight", "grace", m.Grace.String())
		m.cancelBase()
		err = m.http.Close()
	}
	m.cancelBase()
	m.listeners.stop()
	m.dispatcher.Close()
	m.closeMeter()
	if cerr := m.store.Close(); err == nil {
		err = cerr
	}
	m.dirLock.Release()
	return err
}

// newProvider makes a live provider of the configured kind.
func (m *Main) newProvider(cfg *aigrid.ProviderConfig) (aigrid.Provider, error) {
	switch cfg.Kind {
	case aigrid.KindOpenAI:
		return openai.New(cfg)
	case aigrid.KindLocal:
		if runtime.GOARCH == "amd64" && !tensor.Vectorized() {
			m.Logger.Warn("the embedded engine runs its portable kernels: this aigrid was built without GOEXPERIMENT=simd, "+
				"and decodes a single request several times slower; build it with GOEXPERIMENT=simd (see README.md)", "provider", cfg.Name)
		}
		return local.New(cfg, local.Options{Threads: m.Threads, KVBudget: m.KVBudget, Logger: m.Logger})
	default:
		return nil, aigrid.Errorf(aigrid.EInvalid, "provider %q: kind %q is not available in this version", cfg.Name, cfg.Kind)
	}
}

func runInit(ctx context.Context, args []string, stdout io.Writer) error {
	m := NewMain()
	fs := flag.NewFlagSet("aigrid init", flag.ContinueOnError)
	fs.StringVar(&m.DataDir, "data", m.DataDir, "data directory (created if missing)")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if err := m.openStore(); err != nil {
		return err
	}
	defer m.store.Close()
	secret, err := createAdminKey(ctx, m.store)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Store ready in %s.\nNew operator admin key (shown once; keep it safe, it is stored hashed):\n\n    %s\n\n", m.DataDir, secret)
	return nil
}
