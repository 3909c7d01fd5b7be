#!/usr/bin/env bash
# Train-step throughput of the Pythia presets on one GPU, bfloat16 compute, float32 params and optimizer state.
#
#   bash experiments/gpu_bench.sh [OUT_DIR]        # ~5-8 minutes on one H100/H200, mostly compilation
#
# For each size: experiments.benchmarks.train compiles the trainer's own step (AdamW, clipping, WSD) for one global
# batch of sequences of 2048 tokens (V = 50304, the GPT-NeoX vocabulary padded) and times 30 steps on random tokens, so
# the input pipeline is out of the measurement. It prints tokens/s, MFU against the device's entry in the peak table
# (mixlab/metrics.py), host overhead per step, compile time and peak device memory, and appends JSON lines to
# OUT_DIR/gpu_bench.jsonl. Each size runs in its own process under a time limit, so one failure (e.g. out of memory)
# does not stop the others. Batches are sized to fit in 80 GB without rematerialisation even if attention materialises
# its [B, H, L, L] scores (no fused kernel).
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-runs/gpu_bench}
mkdir -p "$OUT_DIR"
PY=${PY:-.venv/bin/python}
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # so peak_bytes_in_use reflects what the step needs

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import jax; print('jax', jax.__version__, jax.devices())"

status=0
for spec in "14m 32" "70m 16" "160m 8" "410m 4"; do
  read -r size batch <<<"$spec"
  echo "== $size, batch $batch x 2048 tokens"
  if ! timeout 150 "$PY" -m experiments.benchmarks.train --sizes="$size" --dtype=bfloat16 --vocab=50304 --seq_len=2048 \
      --batch="$batch" --steps=30 --out="$OUT_DIR/gpu_bench.jsonl"; then
    echo "!! $size failed or timed out (exit $?)"
    status=1
  fi
done
echo "results: $OUT_DIR/gpu_bench.jsonl"
exit $status
