#!/usr/bin/env bash
# Runs llama.cpp (../shared/tools/llamacpp/ref.mjs bench) and aigrid's engine
# (go run ./bench/engine, built with GOEXPERIMENT=simd) on the same GGUF files,
# alternately, RUNS times each (best run kept, since the machine is shared),
# and prints the ratios aigrid/llama.cpp, and aigrid's STREAMS streams
# decoding together against one stream (agg, and x1: the best aggregate over
# the best single-stream speed of the same runs).
#
# Usage: bench/engine/compare.sh [MODEL.gguf ...]
#   With no model, writes Qwen2.5-0.5B-shaped random models (Q8_0, Q4_K_M)
#   into $BENCH_DIR (default /tmp/aigrid-bench) once and measures those.
#   RUNS (default 3), THREADS (default 2), STREAMS (default 8).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${BENCH_DIR:-/tmp/aigrid-bench}
runs=${RUNS:-3}
threads=${THREADS:-2}
streams=${STREAMS:-8}
mkdir -p "$dir"
ref=$(bash ../shared/tools/llamacpp/setup.sh)
GOEXPERIMENT=simd go build -o "$dir/aigrid-bench" ./bench/engine

models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  if [ ! -f "$dir/qwen2.5-0.5b-random-q8_0.gguf" ] || [ ! -f "$dir/qwen2.5-0.5b-random-q4_k_m.gguf" ]; then
    "$dir/aigrid-bench" -write-model "$dir"
  fi
  models=("$dir/qwen2.5-0.5b-random-q8_0.gguf" "$dir/qwen2.5-0.5b-random-q4_k_m.gguf")
fi

best() { jq -s "map(.$1) | max" "$2"; }
printf '%-36s %9s %9s %6s %9s %9s %6s %10s %6s %8s %8s\n' model pp:llama pp:aigrid ratio tg:llama tg:aigrid ratio agg:aigrid x1 rss_mib file_mib
for m in "${models[@]}"; do
  r=$(mktemp) a=$(mktemp) s=$(mktemp)
  for _ in $(seq "$runs"); do
    node "$ref/ref.mjs" bench "$m" 128 64 "$threads" >>"$r"
    "$dir/aigrid-bench" -model "$m" -prompt 128 -gen 64 -threads "$threads" >>"$a"
    "$dir/aigrid-bench" -model "$m" -prompt 128 -gen 64 -threads "$threads" -streams "$streams" >>"$s"
  done
  rp=$(best prompt_tps "$r") ap=$(best prompt_tps "$a") rg=$(best gen_tps "$r") ag=$(best gen_tps "$a")
  agg=$(best aggregate_gen_tps "$s") sg=$(best gen_tps "$s")
  printf '%-36s %9.1f %9.1f %6.2f %9.1f %9.1f %6.2f %10.1f %6.2f %8.0f %8.0f\n' "$(basename "$m")" \
    "$rp" "$ap" "$(jq -n "$ap/$rp")" "$rg" "$ag" "$(jq -n "$ag/$rg")" "$agg" "$(jq -n "$agg/$sg")" \
    "$(best rss_mib "$s")" "$(best file_mib "$s")"
  rm -f "$r" "$a" "$s"
done
