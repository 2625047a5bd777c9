#!/usr/bin/env bash
# The two ways the tiny MPT enters MLflow, benchmarked on CUDA: the reference PyFunc and
# MLflow's transformers flavour, each `predict` against raw `generate` of the same prompt
# ids (`harness bench run --model-uri`), on a GPU machine without MLflow or network.
#
#   python benchmarks/gpu_flavour_prep.py [PREP]      # here: models, snapshot, wheels
#   benchmarks/gpu_flavour.sh OUT_DIR [PREP] [DEVICE]  # there (DEVICE cpu: a rehearsal)
#
# Writes OUT_DIR/reference/ and OUT_DIR/flavour/ (bench.json, bench.md; bench.png where
# matplotlib is) and OUT_DIR/pip.log; with SHAPE=mpt-7b also OUT_DIR/shape-mpt-7b/ (random
# weights of MPT-7B's shape, raw generate vs the reference wrapper's predict). Each model has a time limit, so one that hangs
# leaves the other's report.
set -uo pipefail
OUT=${1:?usage: benchmarks/gpu_flavour.sh OUT_DIR [PREP] [DEVICE]}
PREP=$(cd "${2:-.harness/gpu}" && pwd)
DEVICE=${3:-cuda}
BATCH_SIZES=${BATCH_SIZES:-1,8}
PROMPT_TOKENS=${PROMPT_TOKENS:-128}
NEW_TOKENS=${NEW_TOKENS:-64}
MAX_TIME=${MAX_TIME:-15}
LIMIT=${LIMIT:-150}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
# Only what is missing is installed; nothing comes from the network.
python -m pip install -q --no-index --find-links "$PREP/wheels" mlflow-skinny pydantic pandas psutil \
  click tqdm pyyaml requests filelock >"$OUT/pip.log" 2>&1 || { tail -5 "$OUT/pip.log"; exit 1; }

status=0
for model in reference flavour; do
  echo "== $model: predict vs raw generate on $DEVICE" >&2
  timeout "$LIMIT" python -m harness.cli bench run --model-uri "$PREP/models/$model" \
    --snapshot "$PREP/tiny" --device "$DEVICE" --batch-sizes "$BATCH_SIZES" \
    --prompt-tokens "$PROMPT_TOKENS" --new-tokens "$NEW_TOKENS" --max-time "$MAX_TIME" \
    --warmup "${WARMUP:-1}" --no-mlflow --report-dir "$OUT/$model" 2> >(grep -v "WARNING\|Warning\|warn(\|^\[transformers\]" >&2) \
    || { echo "$model: exit $?" >&2; status=1; }
done
if [ -n "${SHAPE:-}" ]; then  # e.g. SHAPE=mpt-7b: random weights of that shape, raw vs reference
  echo "== $SHAPE shape: reference predict vs raw generate on $DEVICE" >&2
  timeout "$LIMIT" python -m harness.cli bench run --shape "$SHAPE" --device "$DEVICE" \
    --batch-sizes "$BATCH_SIZES" --prompt-tokens "$PROMPT_TOKENS" --new-tokens "$NEW_TOKENS" \
    --cache on --rounds "${SHAPE_ROUNDS:-5}" --max-time "$MAX_TIME" --warmup "${WARMUP:-1}" --no-mlflow --report-dir "$OUT/shape-$SHAPE" \
    2> >(grep -v "WARNING\|Warning\|warn(\|^\[transformers\]" >&2) \
    || { echo "$SHAPE: exit $?" >&2; status=1; }
fi
echo "reports in $OUT" >&2
exit $status
