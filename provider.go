package aigrid

import (
	"context"
	"net/url"
	"time"
)

// Provider kinds.
const (
	KindOpenAI = "openai" // any OpenAI-compatible upstream
	KindLocal  = "local"  // the embedded engine serving GGUF files
)

// ProviderConfig describes a source of inference as the operator configured it.
type ProviderConfig struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	BaseURL string `json:"base_url,omitempty"`
	// APIKeyEnv names the environment variable that holds the upstream's key.
	APIKeyEnv string `json:"api_key_env,omitempty"`
	// APIKey is the upstream's key when given directly; it is never listed back.
	APIKey       string   `json:"api_key,omitempty"`
	Jurisdiction string   `json:"jurisdiction,omitempty"`
	RetainsData  bool     `json:"retains_data"`
	Timeouts     Timeouts `json:"timeouts"`
	// ProbeInterval is how often the grid asks the provider whether it is up
	// (GET /models); 0 means DefaultProbeInterval.
	ProbeInterval Duration  `json:"probe_interval,omitzero"`
	Offers        []Offer   `json:"offers"`
	Disabled      bool      `json:"disabled,omitempty"`
	UpdatedAt     time.Time `json:"updated_at,omitzero"`
}

// Timeouts bound the phases of an upstream request.
type Timeouts struct {
	// Connect bounds dialing and the TLS handshake.
	Connect Duration `json:"connect,omitzero"`
	// FirstByte bounds the wait for the response headers (and, when streaming, the first chunk).
	FirstByte Duration `json:"first_byte,omitzero"`
	// Idle bounds the silence between two chunks of a stream.
	Idle Duration `json:"idle,omitzero"`
	// Total bounds a whole non-streaming request.
	Total Duration `json:"total,omitzero"`
}

// DefaultProbeInterval is how often providers are probed when not configured.
const DefaultProbeInterval = 30 * time.Second

// Default upstream timeouts.
const (
	DefaultConnectTimeout   = 5 * time.Second
	DefaultFirstByteTimeout = 60 * time.Second
	DefaultIdleTimeout      = 30 * time.Second
	DefaultTotalTimeout     = 10 * time.Minute
)

// WithDefaults returns t with every unset timeout set to its default.
func (t Timeouts) WithDefaults() Timeouts {
	if t.Connect <= 0 {
		t.Connect = Duration(DefaultConnectTimeout)
	}
	if t.FirstByte <= 0 {
		t.FirstByte = Duration(DefaultFirstByteTimeout)
	}
	if t.Idle <= 0 {
		t.Idle = Duration(DefaultIdleTimeout)
	}
	if t.Total <= 0 {
		t.Total = Duration(DefaultTotalTimeout)
	}
	return t
}

// Offer is one model on one provider: what it serves, what it costs the operator,
// its capacity and what it can do.
type Offer struct {
	// Model is the upstream's own model id (or, for local, the model's name).
	Model string `json:"model"`
	// Path is the GGUF file of a local offer.
	Path string `json:"path,omitempty"`
	// Serves lists the service model names that tenants ask for.
	Serves []string `json:"serves"`
	// Price is the operator's cost per million tokens, in the grid's currency.
	Price          Price `json:"price"`
	MaxConcurrency int   `json:"max_concurrency,omitempty"`
	ContextLength  int   `json:"context_length,omitempty"`
	// Capabilities, such as "chat", "embeddings", "tools", "vision", "json".
	// Empty means chat, tools and json.
	Capabilities []string `json:"capabilities,omitempty"`
}

// Capabilities an offer may declare.
const (
	CapChat       = "chat"
	CapEmbeddings = "embeddings"
	CapTools      = "tools"
	CapVision     = "vision"
	CapJSON       = "json"
)

// DefaultCapabilities are those of an upstream offer that declares none.
var DefaultCapabilities = []string{CapChat, CapTools, CapJSON}

// LocalCapabilities are those of a local (embedded engine) offer that
// declares none: the engine chats and embeds, and has no tools or JSON mode.
var LocalCapabilities = []string{CapChat, CapEmbeddings}

// FillDefaults gives the offers of a local provider that declare no
// capabilities the engine's, so that dispatch never sends them a request
// they would refuse.
func (p *ProviderConfig) FillDefaults() {
	if p.Kind != KindLocal {
		return
	}
	for i := range p.Offers {
		if len(p.Offers[i].Capabilities) == 0 {
			p.Offers[i].Capabilities = LocalCapabilities
		}
	}
}

// Can reports whether the offer has the capability.
func (o *Offer) Can(capability string) bool {
	caps := o.Capabilities
	if len(caps) == 0 {
		caps = DefaultCapabilities
	}
	for _, c := range caps {
		if c == capability {
			return true
		}
	}
	return false
}

// Price is a cost per million input and output tokens.
type Price struct {
	Input  Rate `json:"input"`
	Output Rate `json:"output"`
}

// ProviderService stores provider configurations.
type ProviderService interface {
	UpsertProvider(ctx context.Context, p *ProviderConfig) error
	FindProvider(ctx context.Context, name string) (*ProviderConfig, error)
	ListProviders(ctx context.Context) ([]*ProviderConfig, error)
	DeleteProvider(ctx context.Context, name string) error
}

// Provider is a live source of inference. Implementations convert the canonical
// request to their protocol and back. Optional abilities are separate interfaces.
type Provider interface {
	// Chat runs a chat completion on the offer's model. When req.Stream is set,
	// each chunk is passed to emit as it arrives and the returned response holds
	// only what the stream summed up (usage, finish reasons); otherwise emit is not
	// called. emit must not keep a chunk after it returns: providers may reuse it.
	// An error from emit stops the request and is returned.
	Chat(ctx context.Context, offer *Offer, req *ChatRequest, emit func(*ChatChunk) error) (*ChatResponse, error)
}

// Embedder is a Provider that also computes embeddings.
type Embedder interface {
	Embed(ctx context.Context, offer *Offer, req *EmbeddingRequest) (*EmbeddingResponse, error)
}

// Validate checks a provider configuration as the admin API and the config file accept it.
func (p *ProviderConfig) Validate() error {
	if err := ValidateName("provider", p.Name); err != nil {
		return err
	}
	switch p.Kind {
	case KindOpenAI:
		u, err := url.Parse(p.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Errorf(EInvalid, "provider %q: base_url %q must be an absolute http or https URL such as http://127.0.0.1:9100/v1", p.Name, p.BaseURL)
		}
	case KindLocal:
		if p.BaseURL != "" {
			return Errorf(EInvalid, "provider %q: a local provider serves GGUF files named by its offers' path; it has no base_url", p.Name)
		}
		for _, o := range p.Offers {
			if o.Path == "" {
				return Errorf(EInvalid, "provider %q: offer %q needs a path: the GGUF file the embedded engine serves", p.Name, o.Model)
			}
		}
	case "":
		return Errorf(EInvalid, "provider %q: kind is required (openai or local)", p.Name)
	default:
		return Errorf(EInvalid, "provider %q: kind %q is not known; use openai or local", p.Name, p.Kind)
	}
	if p.Jurisdiction != "" && !ValidJurisdiction(p.Jurisdiction) {
		return Errorf(EInvalid, "provider %q: jurisdiction %q is not an ISO 3166-1 alpha-2 code such as KE", p.Name, p.Jurisdiction)
	}
	if len(p.Offers) == 0 {
		return Errorf(EInvalid, "provider %q has no offers", p.Name)
	}
	for i := range p.Offers {
		if err := p.Offers[i].validate(p.Name, i); err != nil {
			return err
		}
	}
	return nil
}

func (o *Offer) validate(provider string, i int) error {
	if o.Model == "" {
		return Errorf(EInvalid, "provider %q: offers[%d] needs a model", provider, i)
	}
	if len(o.Serves) == 0 {
		return Errorf(EInvalid, "provider %q: offer %q serves no service model; list at least one in serves", provider, o.Model)
	}
	for _, s := range o.Serves {
		if err := ValidateName("service model", s); err != nil {
			return Errorf(EInvalid, "provider %q: offer %q: %v", provider, o.Model, err)
		}
	}
	if o.Price.Input < 0 || o.Price.Output < 0 {
		return Errorf(EInvalid, "provider %q: offer %q: prices must not be negative", provider, o.Model)
	}
	if o.MaxConcurrency < 0 || o.ContextLength < 0 {
		return Errorf(EInvalid, "provider %q: offer %q: max_concurrency and context_length must not be negative", provider, o.Model)
	}
	for _, c := range o.Capabilities {
		switch c {
		case CapChat, CapEmbeddings, CapTools, CapVision, CapJSON:
		default:
			return Errorf(EInvalid, "provider %q: offer %q: capability %q is not one of chat, embeddings, tools, vision, json", provider, o.Model, c)
		}
	}
	return nil
}
