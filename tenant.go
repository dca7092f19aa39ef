package aigrid

import (
	"context"
	"time"
)

// ServiceClass is a tenant's weight in fair sharing and its place when capacity is short.
type ServiceClass string

const (
	ClassLifeline  ServiceClass = "lifeline"
	ClassStandard  ServiceClass = "standard"
	ClassPriority  ServiceClass = "priority"
	ClassEmergency ServiceClass = "emergency"
)

// Valid reports whether c is one of the four service classes.
func (c ServiceClass) Valid() bool {
	switch c {
	case ClassLifeline, ClassStandard, ClassPriority, ClassEmergency:
		return true
	}
	return false
}

// Tenant is an account that consumes: a clinic, a school, a company, a person.
type Tenant struct {
	ID    int64        `json:"id"`
	Name  string       `json:"name"`
	Class ServiceClass `json:"class"`
	// Residency, when set, limits the tenant to providers in these ISO 3166-1
	// alpha-2 jurisdictions.
	Residency []string `json:"residency,omitempty"`
	// NoRetention limits the tenant to offers whose provider does not retain data.
	NoRetention bool `json:"no_retention,omitempty"`
	// Brownout lets the tenant be served at once by a service model's smaller
	// fallback when every offer of the model is saturated, rather than wait.
	Brownout  bool      `json:"brownout,omitempty"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Validate checks the fields a caller sets.
func (t *Tenant) Validate() error {
	if err := ValidateName("tenant", t.Name); err != nil {
		return err
	}
	if t.Class == "" {
		t.Class = ClassStandard
	}
	if !t.Class.Valid() {
		return Errorf(EInvalid, "tenant %q: class %q is not one of lifeline, standard, priority, emergency", t.Name, t.Class)
	}
	for _, j := range t.Residency {
		if !ValidJurisdiction(j) {
			return Errorf(EInvalid, "tenant %q: residency %q is not an ISO 3166-1 alpha-2 code such as KE", t.Name, j)
		}
	}
	return nil
}

// Allows reports whether the tenant's data policy lets an offer of p serve it.
func (t *Tenant) Allows(p *ProviderConfig) bool {
	if t.NoRetention && p.RetainsData {
		return false
	}
	if len(t.Residency) == 0 {
		return true
	}
	for _, j := range t.Residency {
		if j == p.Jurisdiction {
			return true
		}
	}
	return false
}

// TenantUpdate holds the fields of a tenant to change; nil fields stay as they are.
type TenantUpdate struct {
	Class       *ServiceClass `json:"class,omitempty"`
	Residency   *[]string     `json:"residency,omitempty"`
	NoRetention *bool         `json:"no_retention,omitempty"`
	Brownout    *bool         `json:"brownout,omitempty"`
	Disabled    *bool         `json:"disabled,omitempty"`
}

// TenantService stores tenants.
type TenantService interface {
	// UpsertTenant creates the tenant, or updates the one of the same name, and
	// sets t.ID, t.CreatedAt and t.UpdatedAt.
	UpsertTenant(ctx context.Context, t *Tenant) error
	// CreateTenant creates a tenant; EConflict if the name is taken.
	CreateTenant(ctx context.Context, t *Tenant) error
	FindTenantByID(ctx context.Context, id int64) (*Tenant, error)
	FindTenantByName(ctx context.Context, name string) (*Tenant, error)
	ListTenants(ctx context.Context) ([]*Tenant, error)
	UpdateTenant(ctx context.Context, name string, upd TenantUpdate) (*Tenant, error)
}

// Weight is the class's share in fair queueing: priority tenants get twice the
// service of lifeline and standard ones when all are waiting. Emergency calls
// do not share: they go before everyone.
func (c ServiceClass) Weight() float64 {
	if c == ClassPriority {
		return 2
	}
	return 1
}

// ValidateName checks a name given by an operator: 1 to 64 characters of
// letters, digits, '-', '_' and '.', starting with a letter or digit.
func ValidateName(what, name string) error {
	if name == "" {
		return Errorf(EInvalid, "%s name is required", what)
	}
	if len(name) > 64 {
		return Errorf(EInvalid, "%s name %q is longer than 64 characters", what, name)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			i > 0 && (r == '-' || r == '_' || r == '.')
		if !ok {
			return Errorf(EInvalid, "%s name %q may hold only letters, digits, '-', '_' and '.', and must start with a letter or digit", what, name)
		}
	}
	return nil
}

// ValidJurisdiction reports whether s looks like an ISO 3166-1 alpha-2 code.
func ValidJurisdiction(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}
