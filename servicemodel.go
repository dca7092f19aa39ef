package aigrid

import "context"

// ServiceModel is a name tenants ask for, with what the grid does when its
// offers are saturated. Offers declare which service models they serve; a
// service model needs no record of its own unless it has such settings.
type ServiceModel struct {
	Name string `json:"name"`
	// Fallback is a smaller service model that serves tenants with brownout
	// enabled, at once, when every offer of this one is saturated.
	Fallback string `json:"fallback,omitempty"`
}

// Validate checks the fields an operator sets.
func (m *ServiceModel) Validate() error {
	if err := ValidateName("service model", m.Name); err != nil {
		return err
	}
	if m.Fallback != "" {
		if err := ValidateName("fallback service model", m.Fallback); err != nil {
			return err
		}
		if m.Fallback == m.Name {
			return Errorf(EInvalid, "service model %q cannot be its own fallback", m.Name)
		}
	}
	return nil
}

// ServiceModelService stores service model settings.
type ServiceModelService interface {
	UpsertServiceModel(ctx context.Context, m *ServiceModel) error
	ListServiceModels(ctx context.Context) ([]*ServiceModel, error)
	DeleteServiceModel(ctx context.Context, name string) error
}
