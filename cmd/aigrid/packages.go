package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"aigrid"
	"aigrid/config"
	"aigrid/dispatch"
	"aigrid/packages/alerts"
	"aigrid/packages/anomaly"
	"aigrid/packages/forecast"
)

// translationModel is the service model that writes alerts in a tenant's
// other languages, when the grid serves it to the tenant.
const translationModel = "chat"

// newPackages makes the turnkey packages, with their state in the store, the
// public handlers some of them offer, and the MQTT listeners the file
// configures (file may be nil), ready to start.
func newPackages(ctx context.Context, store aigrid.Store, d *dispatch.Dispatcher, meter aigrid.Meter, file *config.File, logger *slog.Logger) ([]aigrid.Package, map[string]http.Handler, *packageListeners, error) {
	al := alerts.New(store, &chatTranslator{dispatcher: d, meter: meter})
	an := anomaly.NewPackage(store)
	pkgs := []aigrid.Package{forecast.New(), an, al}
	public := map[string]http.Handler{"alerts": al.Public(store.FindTenantByName)}
	ls := &packageListeners{logger: logger}
	if file == nil {
		return pkgs, public, ls, nil
	}
	for _, c := range file.Packages.Anomaly.MQTT {
		t, err := store.FindTenantByName(ctx, c.Tenant)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("packages.anomaly.mqtt: tenant %s: %w", c.Tenant, err)
		}
		adm := &admission{store: store, meter: meter, logger: logger, tenant: t.ID, service: aigrid.PackageService(anomaly.Name), ids: aigrid.NewID("mqtt_")}
		ls.anomaly = append(ls.anomaly, &anomaly.Listener{Package: an, Broker: c.BrokerURL(), ClientID: c.ClientID, Tenant: t.ID,
			Prefix: c.Prefix, Results: c.Results, Admit: adm.admit,
			Logger: logger.With("package", anomaly.Name, "tenant", c.Tenant)})
	}
	return pkgs, public, ls, nil
}

// packageListeners are the packages' listeners that run beside the HTTP server.
type packageListeners struct {
	anomaly []*anomaly.Listener
	logger  *slog.Logger
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// start runs each listener until stop.
func (ls *packageListeners) start() {
	ctx, cancel := context.WithCancel(context.Background())
	ls.cancel = cancel
	for _, l := range ls.anomaly {
		ls.wg.Go(func() {
			if err := l.Run(ctx); err != nil {
				ls.logger.Error("anomaly: MQTT listener not started", "error", err.Error())
			}
		})
	}
}

// stop ends the listeners and waits until they have.
func (ls *packageListeners) stop() {
	if ls.cancel != nil {
		ls.cancel()
		ls.wg.Wait()
	}
}

// admission admits package work that reaches the grid other than through
// its HTTP API (readings over MQTT) for one tenant, and meters it as the api
// meters a call to /v1/packages/NAME: a disabled tenant is refused; one unit
// is reserved first, so that a tenant with nothing left or over its request
// rate is refused; the units done are settled as input tokens of the service
// "package:NAME" at the tenant's tariff.
type admission struct {
	store   aigrid.TenantService
	meter   aigrid.Meter // nil when unmetered
	logger  *slog.Logger
	tenant  int64
	service string
	ids     string // with a counter, each call's id in the ledger
	n       atomic.Int64
}

func (a *admission) admit(ctx context.Context, _ string) (func(units int), error) {
	// Read each time: the operator may disable the tenant while it runs.
	t, err := a.store.FindTenantByID(ctx, a.tenant)
	if err != nil {
		return nil, err
	}
	if t.Disabled {
		return nil, aigrid.Errorf(aigrid.EForbidden, "The tenant %q is disabled.", t.Name)
	}
	if a.meter == nil {
		return func(int) {}, nil
	}
	call := &aigrid.Call{ID: fmt.Sprintf("%s_%d", a.ids, a.n.Add(1)), Tenant: t, Service: a.service}
	hold, err := a.meter.Reserve(ctx, call, aigrid.PackageEstimate)
	if err != nil {
		return nil, err
	}
	return func(units int) {
		if units == 0 {
			a.meter.Release(hold)
			return
		}
		call.Provider = aigrid.PackageProvider
		if err := a.meter.Settle(ctx, hold, aigrid.ServedBy(call, aigrid.PackageUsage(units), false)); err != nil {
			a.logger.Error("package usage not recorded", "call", call.ID, "service", a.service, "units", units, "error", err.Error())
		}
	}, nil
}

// chatTranslator translates with the grid's own chat models, for the tenant
// that asked, as a call of its own, metered like any chat call (meter may be nil).
type chatTranslator struct {
	dispatcher *dispatch.Dispatcher
	meter      aigrid.Meter
}

func (t *chatTranslator) Translate(ctx context.Context, text, lang string) (string, error) {
	caller := aigrid.CallFrom(ctx)
	if caller == nil || !slices.Contains(t.dispatcher.Models(caller.Tenant), translationModel) {
		return "", aigrid.Errorf(aigrid.EUnavailable, "no chat model serves this tenant: the alert stays in the language it was written in")
	}
	content := aigrid.TextContent(fmt.Sprintf("Translate this public warning message into the language with BCP 47 tag %q. Answer with the translation only, keeping every number, place name and instruction.\n\n%s", lang, text))
	temp := 0.0
	req := &aigrid.ChatRequest{Model: translationModel, Temperature: &temp,
		Messages: []aigrid.Message{{Role: "user", Content: content}}}
	call := &aigrid.Call{ID: caller.ID + "-tr-" + lang, Tenant: caller.Tenant, Key: caller.Key, Service: translationModel}
	var hold *aigrid.Hold
	if t.meter != nil {
		var err error
		if hold, err = t.meter.Reserve(ctx, call, aigrid.Estimate{PromptTokens: req.EstimatePromptTokens(), MaxTokens: 4 * len(text)}); err != nil {
			return "", err
		}
	}
	resp, err := t.dispatcher.Chat(ctx, call, req, nil)
	if err != nil {
		if hold != nil {
			t.meter.Release(hold)
		}
		return "", err
	}
	if hold != nil {
		var u aigrid.Usage
		if resp.Usage != nil {
			u = *resp.Usage
		}
		if err := t.meter.Settle(ctx, hold, aigrid.ServedBy(call, u, resp.Usage == nil)); err != nil {
			return "", err
		}
	}
	if len(resp.Choices) == 0 || resp.Choices[0].Message.Content == nil {
		return "", aigrid.Errorf(aigrid.EUpstream, "the translation came back empty")
	}
	return strings.TrimSpace(resp.Choices[0].Message.Content.String()), nil
}
