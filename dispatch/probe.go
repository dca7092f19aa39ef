package dispatch

import (
	"context"
	"log/slog"
	"time"

	"aigrid"
)

// Prober is a provider that can be asked whether it is up.
type Prober interface {
	Probe(ctx context.Context) error
}

// startProbes asks the provider at its probe interval whether it is up, and
// feeds the answers to its offers' breakers, until the provider is replaced.
func (p *provider) startProbes(logger *slog.Logger) {
	prober, ok := p.impl.(Prober)
	if !ok {
		return
	}
	interval := time.Duration(p.cfg.ProbeInterval)
	if interval <= 0 {
		interval = aigrid.DefaultProbeInterval
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.stop = cancel
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			pctx, done := context.WithTimeout(ctx, min(interval, 10*time.Second))
			err := prober.Probe(pctx)
			done()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				logger.Warn("probe failed", "provider", p.cfg.Name, "error", err.Error())
			}
			for _, o := range p.offers {
				o.health.probed(err == nil, time.Now())
			}
		}
	}()
}
