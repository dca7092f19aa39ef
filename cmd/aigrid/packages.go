package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"aigrid"
	"aigrid/dispatch"
	"aigrid/packages/alerts"
	"aigrid/packages/anomaly"
	"aigrid/packages/forecast"
)

// translationModel is the service model that writes alerts in a tenant's
// other languages, when the grid serves it to the tenant.
const translationModel = "chat"

// newPackages makes the turnkey packages, with their state in the store, and
// the public handlers some of them offer.
func newPackages(store aigrid.Store, d *dispatch.Dispatcher, meter aigrid.Meter) ([]aigrid.Package, map[string]http.Handler) {
	al := alerts.New(store, &chatTranslator{dispatcher: d, meter: meter})
	pkgs := []aigrid.Package{forecast.New(), anomaly.NewPackage(store), al}
	public := map[string]http.Handler{"alerts": al.Public(store.FindTenantByName)}
	return pkgs, public
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
