// Package config reads the grid's declarative YAML file and applies it to the
// store at start: providers, tenants and keys are upserted by name, and what
// the file does not name is left alone. A bad file stops start-up with the
// file, line and reason of each problem.
package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"aigrid"
)

// MaxFileBytes bounds the file read, so that a wrong path (a disk image, a log)
// fails quickly instead of filling memory.
const MaxFileBytes = 4 << 20

// File is the configuration file.
type File struct {
	AdminKeys []string `yaml:"admin_keys"`
	// Currency is the grid's one currency, an ISO 4217 code (KES, XOF, INR, USD...).
	Currency string `yaml:"currency"`
	// Timezone names the zone in which months, days and off-peak hours are counted.
	Timezone      string         `yaml:"timezone"`
	Tariffs       []Tariff       `yaml:"tariffs"`
	Server        Server         `yaml:"server"`
	Dispatch      Dispatch       `yaml:"dispatch"`
	Providers     []Provider     `yaml:"providers"`
	ServiceModels []ServiceModel `yaml:"service_models"`
	Tenants       []Tenant       `yaml:"tenants"`
	Packages      Packages       `yaml:"packages"`
}

// Dispatch tunes how calls are dispatched to offers; zero values take the defaults.
type Dispatch struct {
	MaxAttempts  int      `yaml:"max_attempts"`
	Deadline     Duration `yaml:"deadline"`
	QueueTimeout Duration `yaml:"queue_timeout"`
	MaxQueue     int      `yaml:"max_queue"`
}

// ServiceModel holds a service model's settings.
type ServiceModel struct {
	Name     string `yaml:"name"`
	Fallback string `yaml:"fallback"`
}

// Server holds settings of aigrid serve; command-line flags override them.
type Server struct {
	Listen        string   `yaml:"listen"`
	MaxBodyBytes  ByteSize `yaml:"max_body_bytes"`
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	LogLevel      string   `yaml:"log_level"`
}

// Provider is a provider as the file writes it.
type Provider struct {
	Name          string   `yaml:"name"`
	Kind          string   `yaml:"kind"`
	BaseURL       string   `yaml:"base_url"`
	APIKeyEnv     string   `yaml:"api_key_env"`
	Jurisdiction  string   `yaml:"jurisdiction"`
	RetainsData   bool     `yaml:"retains_data"`
	Disabled      bool     `yaml:"disabled"`
	Timeouts      Timeouts `yaml:"timeouts"`
	ProbeInterval Duration `yaml:"probe_interval"`
	Offers        []Offer  `yaml:"offers"`
}

// Timeouts of a provider.
type Timeouts struct {
	Connect   Duration `yaml:"connect"`
	FirstByte Duration `yaml:"first_byte"`
	Idle      Duration `yaml:"idle"`
	Total     Duration `yaml:"total"`
}

// Offer is an offer as the file writes it.
type Offer struct {
	Model          string   `yaml:"model"`
	Path           string   `yaml:"path"`
	Serves         []string `yaml:"serves"`
	Price          Price    `yaml:"price"`
	MaxConcurrency int      `yaml:"max_concurrency"`
	ContextLength  int      `yaml:"context_length"`
	Capabilities   []string `yaml:"capabilities"`
}

// Price per million tokens, in major units of the grid's currency.
type Price struct {
	Input  Rate `yaml:"input"`
	Output Rate `yaml:"output"`
}

// Rate is a price per million tokens written as a plain decimal number.
type Rate aigrid.Rate

// UnmarshalYAML reads the number's text exactly, never through a float.
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a price is a number such as 20 or 0.035", n.Line)
	}
	v, err := aigrid.ParseRate(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %v", n.Line, err)
	}
	*r = Rate(v)
	return nil
}

// Tenant is a tenant as the file writes it.
type Tenant struct {
	Name        string   `yaml:"name"`
	Class       string   `yaml:"class"`
	Residency   []string `yaml:"residency"`
	NoRetention bool     `yaml:"no_retention"`
	Brownout    bool     `yaml:"brownout"`
	// Disabled, when the file leaves it out, keeps what the store has: a
	// tenant the operator disabled through the admin API stays disabled
	// across a restart with the file.
	Disabled *bool       `yaml:"disabled"`
	Keys     []TenantKey `yaml:"keys"`
	Tariff   string      `yaml:"tariff"`
	Account  *Account    `yaml:"account"`
	Limits   *Limits     `yaml:"limits"`
}

// TenantKey is a key listed under a tenant: a plain secret, or a mapping
// {secret, name, models, expires}.
type TenantKey struct {
	Secret  string
	Name    string
	Models  []string
	Expires *time.Time
}

// UnmarshalYAML accepts a string or a mapping with known keys only.
func (k *TenantKey) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&k.Secret)
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a key is a string or a mapping {secret, name, models, expires}", n.Line)
	}
	var raw struct {
		Secret  string   `yaml:"secret"`
		Name    string   `yaml:"name"`
		Models  []string `yaml:"models"`
		Expires string   `yaml:"expires"`
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch key := n.Content[i].Value; key {
		case "secret", "name", "models", "expires":
		default:
			return fmt.Errorf("line %d: field %s not found in type key", n.Content[i].Line, key)
		}
	}
	if err := n.Decode(&raw); err != nil {
		return err
	}
	k.Secret, k.Name, k.Models = raw.Secret, raw.Name, raw.Models
	if raw.Expires != "" {
		t, err := parseTime(raw.Expires)
		if err != nil {
			return fmt.Errorf("line %d: expires %q is not a date (2027-01-31) or an RFC 3339 time", n.Line, raw.Expires)
		}
		k.Expires = &t
	}
	return nil
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, s)
}

// Duration is a duration written as text: "30s", "2m", "1h30m".
type Duration aigrid.Duration

// UnmarshalYAML reads a duration, naming the line of a bad one.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var v aigrid.Duration
	if err := v.UnmarshalText([]byte(n.Value)); err != nil || n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: %q is not a duration such as 30s or 2m", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// ByteSize is a size in bytes, written as a number or with a unit: "8MiB", "512KiB", "1GiB".
type ByteSize int64

// UnmarshalYAML reads a number of bytes or a size with a binary unit.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		return fmt.Errorf("line %d: expected a size such as 8388608 or \"8MiB\", got %q", n.Line, n.Value)
	}
	*b = v
	return nil
}

// ParseByteSize reads a number of bytes or a size with a binary unit
// ("8MiB", "512KiB", "2GiB"), up to 1 TiB.
func ParseByteSize(text string) (ByteSize, error) {
	s := strings.TrimSpace(text)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > (1<<40)/mult {
		return 0, fmt.Errorf("expected a size such as 8388608 or 8MiB, got %q", text)
	}
	return ByteSize(v * mult), nil
}

// Load reads and checks the file at path.
func Load(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, MaxFileBytes+1)); err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	return Parse(path, buf.Bytes())
}

// Parse reads and checks a file's contents; filename is used in error messages.
func Parse(filename string, data []byte) (*File, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%s: the file is larger than %d MiB; is it the right file?", filename, MaxFileBytes>>20)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && err != io.EOF { // io.EOF: an empty file configures nothing
		return nil, yamlError(filename, err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(filename, err)
	}
	if errs := f.check(filename, &root); len(errs) > 0 {
		return nil, errs
	}
	return &f, nil
}

var (
	yamlLine     = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unknownField = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
	wrongType    = regexp.MustCompile("^cannot unmarshal !!(\\w+) `(.*)` into (\\S+)$")
)

// yamlError rewrites the YAML library's errors as "file:line: reason".
func yamlError(filename string, err error) error {
	var te *yaml.TypeError
	lines := []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	if errors.As(err, &te) {
		lines = te.Errors
	}
	var errs Errors
	for _, l := range lines {
		m := yamlLine.FindStringSubmatch(l)
		if m == nil {
			errs = append(errs, Error{File: filename, Reason: l})
			continue
		}
		line, _ := strconv.Atoi(m[1])
		reason := m[2]
		if u := unknownField.FindStringSubmatch(reason); u != nil {
			reason = fmt.Sprintf("unknown key %q", u[1])
		} else if w := wrongType.FindStringSubmatch(reason); w != nil {
			reason = fmt.Sprintf("expected %s, got %q", goTypeWords(w[3]), w[2])
		}
		errs = append(errs, Error{File: filename, Line: line, Reason: reason})
	}
	return errs
}

func goTypeWords(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.Contains(t, "int"):
		return "an integer"
	case strings.Contains(t, "float"):
		return "a number"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "config.") || strings.HasPrefix(t, "map"):
		return "a mapping"
	}
	return t
}

// Error is one problem of a file.
type Error struct {
	File   string
	Line   int
	Path   string
	Reason string
}

func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Errors are the problems of a file, reported together.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// maxErrors bounds how many problems are reported at once.
const maxErrors = 10

// Result says what Apply did.
type Result struct {
	Providers, ServiceModels, Tenants, Keys, AdminKeys, Tariffs, Accounts int
	Warnings                                                              []string
}

// ProviderConfigs returns the file's providers in the form the store keeps.
func (f *File) ProviderConfigs() []*aigrid.ProviderConfig {
	out := make([]*aigrid.ProviderConfig, len(f.Providers))
	for i, p := range f.Providers {
		cfg := &aigrid.ProviderConfig{Name: p.Name, Kind: p.Kind, BaseURL: p.BaseURL, APIKeyEnv: p.APIKeyEnv,
			Jurisdiction: p.Jurisdiction, RetainsData: p.RetainsData, Disabled: p.Disabled, ProbeInterval: aigrid.Duration(p.ProbeInterval),
			Timeouts: aigrid.Timeouts{Connect: aigrid.Duration(p.Timeouts.Connect), FirstByte: aigrid.Duration(p.Timeouts.FirstByte),
				Idle: aigrid.Duration(p.Timeouts.Idle), Total: aigrid.Duration(p.Timeouts.Total)}}
		for _, o := range p.Offers {
			cfg.Offers = append(cfg.Offers, aigrid.Offer{Model: o.Model, Path: o.Path, Serves: o.Serves,
				Price: aigrid.Price{Input: aigrid.Rate(o.Price.Input), Output: aigrid.Rate(o.Price.Output)}, MaxConcurrency: o.MaxConcurrency,
				ContextLength: o.ContextLength, Capabilities: o.Capabilities})
		}
		cfg.FillDefaults()
		out[i] = cfg
	}
	return out
}

func (t *Tenant) tenant() *aigrid.Tenant {
	return &aigrid.Tenant{Name: t.Name, Class: aigrid.ServiceClass(t.Class), Residency: t.Residency,
		NoRetention: t.NoRetention, Brownout: t.Brownout, Disabled: t.Disabled != nil && *t.Disabled}
}

// Apply writes the file into the store: providers, tenants and their keys, and
// admin keys, each upserted, so applying the same file twice changes nothing.
func (f *File) Apply(ctx context.Context, store aigrid.Store) (Result, error) {
	var res Result
	tenants := map[string]*aigrid.Tenant{}
	for _, p := range f.ProviderConfigs() {
		if p.APIKeyEnv != "" && os.Getenv(p.APIKeyEnv) == "" {
			res.Warnings = append(res.Warnings, fmt.Sprintf("provider %s: the environment variable %s (api_key_env) is not set; requests to it will carry no key", p.Name, p.APIKeyEnv))
		}
		if err := store.UpsertProvider(ctx, p); err != nil {
			return res, err
		}
		res.Providers++
	}
	for _, m := range f.ServiceModels {
		if err := store.UpsertServiceModel(ctx, &aigrid.ServiceModel{Name: m.Name, Fallback: m.Fallback}); err != nil {
			return res, err
		}
		res.ServiceModels++
	}
	for i := range f.Tenants {
		ft := &f.Tenants[i]
		t := ft.tenant()
		if ft.Disabled == nil {
			switch old, err := store.FindTenantByName(ctx, t.Name); {
			case err == nil:
				t.Disabled = old.Disabled
			case aigrid.ErrorCode(err) != aigrid.ENotFound:
				return res, err
			}
		}
		if err := store.UpsertTenant(ctx, t); err != nil {
			return res, err
		}
		res.Tenants++
		tenants[t.Name] = t
		for _, k := range ft.Keys {
			name := k.Name
			if name == "" {
				name = "config"
			}
			key := &aigrid.Key{TenantID: t.ID, Name: name, Hint: aigrid.KeyHint(k.Secret), Hash: aigrid.HashKey(k.Secret),
				Models: k.Models, ExpiresAt: k.Expires}
			if err := store.CreateKey(ctx, key); err != nil {
				return res, fmt.Errorf("tenant %s: key %s: %w", t.Name, key.Hint, err)
			}
			res.Keys++
		}
	}
	for _, secret := range f.AdminKeys {
		key := &aigrid.Key{Admin: true, Name: "config", Hint: aigrid.KeyHint(secret), Hash: aigrid.HashKey(secret)}
		if err := store.CreateKey(ctx, key); err != nil {
			return res, fmt.Errorf("admin key %s: %w", key.Hint, err)
		}
		res.AdminKeys++
	}
	if err := f.applyBilling(ctx, store, tenants, &res); err != nil {
		return res, err
	}
	res.Warnings = append(res.Warnings, f.packageWarnings()...)
	return res, nil
}
