#!/usr/bin/env bash
# Train-step throughput on one GPU: Pythia presets and 14M ensembles, bfloat16 compute, float32 params and optimizer.
#
#   bash experiments/gpu_bench.sh [OUT_DIR]            # sized for < 8 minutes on one H100/H200 (not yet run on one)
#   bash experiments/gpu_bench.sh --dry-run [OUT_DIR]  # the same script on CPU with tiny shapes (tests/test_gpu_bench.py)
#
# Part 1, for 14m, 70m, 160m and 410m: experiments.benchmarks.train compiles the trainer's own step (AdamW, clipping,
# WSD; attention "auto" = cuDNN's fused kernel for bf16 on GPU) for one global batch of sequences of 2048 tokens
# (V = 50304, the GPT-NeoX vocabulary padded) and times 30 steps on random tokens, so the input pipeline is out of the
# measurement. It prints tokens/s, MFU against the device's bf16 dense peak (mixlab/metrics.py's table), host
# overhead per step, compile time and peak device memory.
# Part 2: 14m ensembles of K = 1, 4, 16 members (each its own batch of 2 x 2048 tokens, the size of a small sweep
# run), one vmapped step for all, and their tokens/s relative to K = 1.
# Every size and K runs in its own process under a time limit, so one failure (e.g. out of memory) does not stop the
# others; each appends a JSON line to OUT_DIR/gpu_bench.jsonl (default runs/gpu_bench), summarised at the end.
#
# XLA flags: --xla_gpu_enable_latency_hiding_scheduler=true (overlaps the optimizer's and the next layer's work) is
# set unless XLA_FLAGS is already set. XLA_PYTHON_CLIENT_PREALLOCATE=false so that peak_bytes_in_use is what the step
# needs. Buffers of the state are donated to the step (mixlab/step.py) and the trainer reads step t-1's metrics while
# step t runs (no host sync in the step).
set -u -o pipefail
cd "$(dirname "$0")/.."
DRY_RUN=0
if [ "${1:-}" = "--dry-run" ]; then DRY_RUN=1; shift; fi
OUT_DIR=${1:-runs/gpu_bench}
mkdir -p "$OUT_DIR"
PY=${PY:-.venv/bin/python}
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export XLA_FLAGS=${XLA_FLAGS:---xla_gpu_enable_latency_hiding_scheduler=true}
OUT="$OUT_DIR/gpu_bench.jsonl"
rm -f "$OUT"

if [ "$DRY_RUN" = 1 ]; then
  export JAX_PLATFORMS=cpu XLA_FLAGS=""
  COMMON=(--dtype=bfloat16 --vocab=256 --seq_len=32 --steps=2 --rounds=1)
  SIZES=("t25k 4" "t57k 4")
  ENSEMBLE=(t25k 2 "1 2")
  LIMIT=300
else
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  COMMON=(--dtype=bfloat16 --vocab=50304 --seq_len=2048 --steps=30)
  SIZES=("14m 32" "70m 16" "160m 8" "410m 4")
  ENSEMBLE=(14m 2 "1 4 16")
  LIMIT=150
fi
"$PY" -c "import jax; print('jax', jax.__version__, jax.devices())"

status=0
bench() {  # label, then flags for experiments.benchmarks.train
  local label=$1
  shift
  echo "== $label"
  if ! timeout "$LIMIT" "$PY" -m experiments.benchmarks.train "${COMMON[@]}" --out="$OUT" "$@"; then
    echo "!! $label failed or timed out"
    status=1
  fi
}
for spec in "${SIZES[@]}"; do
  read -r size batch <<<"$spec"
  bench "$size, batch $batch" --sizes="$size" --batch="$batch"
done
read -r size batch <<<"${ENSEMBLE[0]} ${ENSEMBLE[1]}"
for k in ${ENSEMBLE[2]}; do
  bench "$size ensemble of $k, batch $batch each" --sizes="$size" --batch="$batch" --ensemble="$k"
done

"$PY" - "$OUT" "$size" "$batch" <<'PYEOF'
import json, sys
path, size, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [json.loads(line) for line in open(path)]
ensemble = [r for r in rows if r["size"] == size and r["batch"] == batch]
single = [r["tokens_per_s"] for r in ensemble if r["ensemble"] == 1]
print("| size | batch per member | K | tokens/s | MFU | peak memory GiB | tokens/s vs K = 1 |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for r in rows:
    mfu = "n/a" if r["mfu"] is None else f"{r['mfu']:.1%}"
    mem = "n/a" if r["peak_bytes_in_use"] is None else f"{r['peak_bytes_in_use'] / 2**30:.2f}"
    ratio = f"{r['tokens_per_s'] / single[0]:.2f}x" if r in ensemble and single else ""
    print(f"| {r['size']} | {r['batch']} | {r['ensemble']} | {r['tokens_per_s']:,.0f} | {mfu} | {mem} | {ratio} |")
PYEOF
echo "results: $OUT"
exit $status
