#!/usr/bin/env bash
# The whole CUDA benchmark suite, for a GPU machine without MLflow (under 8 minutes on an H100).
#
#   benchmarks/gpu_suite.sh OUT_DIR [SHAPE] [DEVICE]
#
# SHAPE defaults to mpt-7b (random bf16 weights built on the GPU), DEVICE to cuda. Prove it on a
# CPU first with small settings:
#   BATCH_SIZES=1,2 PROMPT_TOKENS=64 NEW_TOKENS=8 benchmarks/gpu_suite.sh /tmp/out tiny cpu
# Writes OUT_DIR/cache-on/ and OUT_DIR/cache-off/ (bench.json, bench.md, bench.png when
# matplotlib is there; else `harness bench plot OUT_DIR/*/bench.json` later) and
# OUT_DIR/pytest-benchmark.json (the gpu suite on CUDA, the CPU one elsewhere).
set -euo pipefail
OUT=${1:?usage: benchmarks/gpu_suite.sh OUT_DIR [SHAPE] [DEVICE]}
SHAPE=${2:-mpt-7b}
DEVICE=${3:-cuda}
BATCH_SIZES=${BATCH_SIZES:-1,8,32}
PROMPT_TOKENS=${PROMPT_TOKENS:-128,512}
NEW_TOKENS=${NEW_TOKENS:-128}
# Without the KV cache every step recomputes the whole sequence: measured on small batches only.
CACHE_OFF_BATCH_SIZES=${CACHE_OFF_BATCH_SIZES:-1,8}
ROUNDS=${ROUNDS:-3}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
run() { python -m harness.cli bench run --shape "$SHAPE" --device "$DEVICE" --dtype auto \
          --prompt-tokens "$PROMPT_TOKENS" --new-tokens "$NEW_TOKENS" --rounds "$ROUNDS" \
          --warmup 1 --no-mlflow "$@"; }

echo "== cache on: batch $BATCH_SIZES, prompt $PROMPT_TOKENS, new $NEW_TOKENS" >&2
run --batch-sizes "$BATCH_SIZES" --cache on --report-dir "$OUT/cache-on"
echo "== cache off (the published use_cache: false): batch $CACHE_OFF_BATCH_SIZES" >&2
run --batch-sizes "$CACHE_OFF_BATCH_SIZES" --cache off --report-dir "$OUT/cache-off"
# The harness pytest plugin (gpu marker, fixtures) is an entry point once installed; from a
# plain copy of the tree it must be named.
PLUGIN=$(python -c "import importlib.metadata as m; print('' if any(e.name == 'harness' for e in m.entry_points(group='pytest11')) else '-p harness.testing.plugin')")
MARK=$([ "$DEVICE" = cuda ] && echo gpu || echo "not gpu")
echo "== pytest-benchmark ($MARK)" >&2
(cd "$ROOT" && python -m pytest benchmarks $PLUGIN -m "$MARK" -q -p no:cacheprovider \
   --benchmark-json "$OUT/pytest-benchmark.json")
echo "reports in $OUT" >&2
