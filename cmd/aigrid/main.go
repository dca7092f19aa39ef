// Command aigrid runs the AI utility grid (aigrid serve) and administers a
// running one (aigrid tenant|key|provider ...).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	// The time zones in the binary (about 450 KB): a grid's months, days and
	// off-peak hours are counted in its zone, and a server without the
	// system's zoneinfo (a minimal container) could not load Africa/Nairobi.
	_ "time/tzdata"

	"aigrid/engine/tensor"
)

const usage = `aigrid: AI as a public utility.

Usage:
  aigrid serve [--data DIR] [--listen ADDR] [--config FILE]   run the grid
  aigrid init [--data DIR]                                   create the store and a new admin key
  aigrid tenant add|list|show|disable|enable ...             manage tenants
  aigrid key create|list|revoke ...                          manage tenant keys
  aigrid provider add|list|show|remove ...                   manage providers
  aigrid service-model set|list|remove ...                   brownout fallbacks of service models
  aigrid dispatch SERVICE_MODEL [--tenant NAME]              show the merit order of a model
  aigrid tariff list|set ...                                 tariffs: blocks, off-peak, versions
  aigrid account show|set|topup|adjust|usage|statement|unpaid ...   tenants' accounts
  aigrid voucher mint|list|void ...                          prepaid vouchers: mint batches, see them, cancel lost ones
  aigrid revenue [--from DATE] [--to DATE]                   revenue, cost and margin by provider
  aigrid backup [--out FILE]                                 copy a running grid's store, checked
  aigrid restore --from FILE [--data DIR]                    put a backup in a new data directory
  aigrid models inspect|generate FILE ...                    look into a GGUF model, or run a raw prompt through it
  aigrid pull URL [--sha256 HEX] [--name FILE] [--data DIR]   download a GGUF model into DIR/models
  aigrid version

Admin commands talk to a running server: --server (or AIGRID_SERVER) and
--admin-key (or AIGRID_ADMIN_KEY). Run "aigrid COMMAND -h" for its flags.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsageShown) {
			fmt.Fprintf(os.Stderr, "aigrid: %v\n", err)
		}
		os.Exit(1)
	}
}

// errUsageShown ends a command whose usage text was already printed.
var errUsageShown = errors.New("usage shown")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsageShown
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "init":
		return runInit(ctx, rest, stdout)
	case "tenant":
		return runTenant(ctx, rest, stdout)
	case "key":
		return runKey(ctx, rest, stdout)
	case "provider":
		return runProvider(ctx, rest, stdout)
	case "service-model":
		return runServiceModel(ctx, rest, stdout)
	case "dispatch":
		return runDispatch(ctx, rest, stdout)
	case "models":
		return runModels(rest, stdout)
	case "voucher":
		return runVoucher(ctx, rest, stdout)
	case "account":
		return runAccount(ctx, rest, stdout)
	case "tariff":
		return runTariff(ctx, rest, stdout)
	case "revenue":
		return runRevenue(ctx, rest, stdout)
	case "backup":
		return runBackup(ctx, rest, stdout)
	case "restore":
		return runRestore(ctx, rest, stdout)
	case "pull":
		return runPull(ctx, rest, stdout, stderr)
	case "version":
		kernels := "portable"
		if tensor.Vectorized() {
			kernels = "vector (GOEXPERIMENT=simd)"
		}
		fmt.Fprintf(stdout, "aigrid %s\nengine kernels: %s\n", version, kernels)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "aigrid: unknown command %q\n\n%s", cmd, usage)
		return errUsageShown
	}
}
