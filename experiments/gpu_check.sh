#!/usr/bin/env bash
# Accelerator check (under 8 minutes on one H100/H200): trains the Pythia 14M and 70M presets for a few steps on
# synthetic web data, one process per size, and prints tokens/s, MFU, data-wait share, compile time and peak memory.
# Needs JAX with CUDA (pip install -e '.[gpu]'). The first call also builds the synthetic corpus, tokenizer and
# token store under data/ (reused afterwards).
#   experiments/gpu_check.sh [extra flags for experiments.gpu_check, e.g. --steps=60]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for size in 14m 70m; do
  "$PY" -m experiments.gpu_check --sizes="$size" "$@"
done
