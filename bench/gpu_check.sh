#!/usr/bin/env bash
# Everything a GPU session checks, as one device call (~8 minutes on an H100):
#   here:   bash bench/prepare_device.sh        (the wheels the image lacks)
#   device: run(command="bash bench/gpu_check.sh", carry=[".device"], timeout_s=590)
# A dry run of every step on this machine's CPU, with tiny sizes:  bash bench/gpu_check.sh --cpu
#
# Steps, each under its own time limit; a failing step does not stop the next ones:
#   env        versions and the GPU
#   tests      pytest -m gpu (no host sync per step, CUDA graphs = eager, a compiled run);
#              on CPU: pytest -m slow (the Inductor-compiled Learner)
#   bench_*    python -m pretrain.tools.bench: small eager / compiled / compiled + CUDA graphs beside
#              the seed's step (pretrain/tools/bench_seed.py, --compare-seed), and base 256 x 512 with
#              gradient accumulation
#   run_bf16   300 steps of `tiny` on the shipped sample corpus in bf16, whose curve must track
#              the fp32 CPU curve in bench/results/cpu_fp32_tiny_sample.csv
# Writes $OUT/gpu_check.json (every step's status and time, every benchmark's figures, the curve
# comparison), $OUT/log.txt (all output) and the run's CSV; prints the summary last.
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=gpu
[ "${1:-}" = "--cpu" ] && MODE=cpu
OUT=${OUT:-$(mktemp -d)}
WORK=$(mktemp -d)
mkdir -p "$OUT"
# a fresh Inductor cache: a compile killed by its time limit can leave a truncated kernel behind
export PYTHONUNBUFFERED=1 PRETRAIN_PROGRESS=plain PYTHONPATH=$PWD TORCHINDUCTOR_CACHE_DIR=$WORK/inductor
if [ "$MODE" = gpu ]; then
  PY=python3
  ls .device/wheels/*.whl >/dev/null 2>&1 || {
    echo "error: .device/ missing: run bench/prepare_device.sh here and carry [\".device\"]"; exit 2; }
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .device/wheels/*.whl \
    || { echo "error: the wheels in .device/wheels did not install"; exit 2; }
  export PYTHONPATH=/tmp/site:$PWD
  DEV=cuda; RUN_STEPS=300; PRECISION=bf16; SLOW=1
  SMALL="--size small --steps 200 --warmup 30"
  EAGER=$SMALL; COMPILED=$SMALL; CUDAGRAPHS="$SMALL --compile reduce-overhead --compare-seed"
  BASE="--size base --steps 10 --warmup 4 --grad_accum 2 --compile reduce-overhead"
  TESTS="-m gpu tests/test_gpu.py"
else
  PY=.venv/bin/python
  DEV=cpu; RUN_STEPS=30; PRECISION=fp32; SLOW=4  # Inductor compiles C++ for minutes on 2 cores
  # compiling small takes minutes on CPU: tiny
  EAGER="--size small --bs 4 --max_length 32 --steps 2 --warmup 1 --compare-seed"
  COMPILED="--size tiny --bs 8 --max_length 32 --steps 2 --warmup 1 --vocab_size 3000"
  CUDAGRAPHS="$COMPILED --compile reduce-overhead"
  BASE="--size base --bs 4 --max_length 32 --steps 1 --warmup 1 --grad_accum 2"
  TESTS="-m slow tests/test_fast_path.py"
fi

step() {  # step NAME SECONDS COMMAND...: run it under `timeout` (x SLOW), log it, record its status and time
  local name=$1 limit=$(($2 * SLOW)) t0=$SECONDS
  shift 2
  echo "=== $name ($(date +%T))" | tee -a "$OUT/log.txt"
  timeout --kill-after=10 "$limit" "$@" >>"$OUT/log.txt" 2>&1
  local rc=$?
  echo "{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $((SECONDS - t0))}" >>"$WORK/steps.jsonl"
  echo "    rc $rc, $((SECONDS - t0)) s" | tee -a "$OUT/log.txt"
}

BENCH=($PY -m pretrain.tools.bench --device $DEV --out "$WORK/bench.jsonl")

step env 60 bash -c "nvidia-smi -L 2>/dev/null; $PY -c 'import sys, torch, transformers, fastai, datasets, tokenizers
print(sys.version.split()[0], \"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"transformers\", transformers.__version__,
      \"fastai\", fastai.__version__, \"datasets\", datasets.__version__, \"tokenizers\", tokenizers.__version__)'"
step tests 240 $PY -m pytest -q -p no:cacheprovider $TESTS
step bench_small_eager 90 "${BENCH[@]}" $EAGER
step bench_small_compiled 150 "${BENCH[@]}" $COMPILED --compile default
step bench_small_cudagraphs 180 "${BENCH[@]}" $CUDAGRAPHS
step bench_base_accum 180 "${BENCH[@]}" $BASE
step run_$PRECISION 150 $PY -m pretrain --size tiny --steps $RUN_STEPS --device $DEV --precision $PRECISION \
  --base_run_name device_$PRECISION --export False --plot False --save_points 1.0 --num_workers 2 --num_proc 4 \
  --checkpoint_dir "$WORK/run" --data_dir "$WORK/data"
cp "$WORK"/run/device_*.csv "$OUT/" 2>/dev/null
$PY bench/gpu_report.py --work "$WORK" --run "$WORK"/run/device_*_11081.csv \
  --reference bench/results/cpu_fp32_tiny_sample.csv --out "$OUT/gpu_check.json"
