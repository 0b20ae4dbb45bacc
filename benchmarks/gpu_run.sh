#!/usr/bin/env bash
# One prepared GPU session: the CUDA tests, the op and training-step benchmarks for every backend,
# the rest of the paper's Moving MNIST schedule from the committed step-3,920 checkpoint, and the
# test on the three 10,000-sequence test sets. Everything lands in one folder, ready to commit.
#
#   bash benchmarks/gpu_run.sh                      # on a GPU machine: one call of at most 10 min
#   bash benchmarks/gpu_run.sh                      # again, with gpu_results/ carried along, if the
#                                                   # schedule did not finish: it resumes
#   bash benchmarks/gpu_run.sh --device cpu --dry-run --results /tmp/dry   # tiny sizes, CPU: checks the script
#
# Options: --fetch-wheels (alone, see below), --device cuda|cpu (cuda), --results DIR (gpu_results), --budget SECONDS this call may
# take in all (540), --dry-run (tiny sizes and one training step: seconds on a CPU; the Triton
# kernels then run in Triton's interpreter).
#
# Stages, in order; a stage whose result is already in DIR is skipped, so a second call continues:
#   tests.log       the CUDA op tests (every backend) and the Triton tests; step parity GPU/CPU
#   ops.json        benchmarks/ops.py --softmax: every backend against the bandwidth bound (eager;
#                   the compiled training steps below are what decides a default)
#   train_*.json    benchmarks/train_throughput.py for each backend, then compiled (default,
#                   reduce-overhead) with the fastest; backend.txt names the fastest eager one
#                   among those whose tests passed; train_<fastest>_nchw.json that backend's step
#                   with NCHW weights (model.channels_last false), to choose the layout on CUDA
#   run/            fit from results/checkpoints/moving_mnist_dfn_h100_step3920.ckpt (or the
#                   run's own last.ckpt) to step 20,000 with that backend; stopped by SIGTERM
#                   (a checkpoint of the step it stops at) when the budget runs short
#   test.json       test of the final checkpoint on the three test sets (batch 250)
# Then DIR.tar.gz (DIR without checkpoints) and the newest last.ckpt are copied to $OUT if set.
#
# A bare GPU machine (results/gpu_h100.md) lacked jsonargparse, omegaconf,
# antlr4-python3-runtime, docstring-parser, typeshed-client and mlxtend. On a machine with the
# package registry, `bash benchmarks/gpu_run.sh --fetch-wheels` downloads their wheels (the versions
# installed there, for Python 3.12) into .whl/; carry .whl and this script installs them into
# /tmp/site before anything else. Logging uses the CSV logger, so W&B is not needed.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(jsonargparse omegaconf antlr4-python3-runtime docstring-parser typeshed-client mlxtend)
if [ "${1:-}" = --fetch-wheels ]; then
  mkdir -p .whl
  for name in "${WHEELS[@]}"; do
    version=$(python -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any -d .whl "$name==$version"
  done
  ls .whl
  exit 0
fi

device=cuda results=gpu_results budget=540 dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    *) echo "gpu_run.sh: unknown option $1 (see the header of benchmarks/gpu_run.sh)" >&2; exit 2 ;;
  esac
done
start=$SECONDS
mkdir -p "$results"
log() { echo "[gpu_run $(( SECONDS - start ))s] $*" | tee -a "$results/progress.log"; }
left() { echo $(( budget - (SECONDS - start) )); }

if [ -d .whl ] && compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
[ "$device" = cpu ] && export TRITON_INTERPRET=1
python - <<'EOF' > "$results/machine.json"
import json, platform, torch
info = {"platform": platform.platform(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
try:
    import triton
    info["triton"] = triton.__version__
except ImportError:
    info["triton"] = None
print(json.dumps(info))
EOF
log "machine: $(cat "$results/machine.json")"

if [ "$dry" = 1 ]; then
  tests=("tests/test_ops_triton.py::test_values_and_gradients_match_the_oracle[True-3-1-kernel0]")
  ops=(--batch 1 --size 8 --repeats 1 --kernels 3x3)
  train=(--batch_size 1 --warmup 0 --steps 1)
  backends=(auto) compile_modes=()
  fit=(--trainer.max_steps 3921 --data.init_args.batch_size 2 --data.init_args.num_workers 0)
  test=(--data.init_args.test_sequences 2 --data.init_args.batch_size 2)
  accelerator=cpu
else
  tests=(tests/test_ops_cuda.py tests/test_ops_triton.py)
  ops=()
  train=(--warmup 3 --steps 20 --profile)
  backends=(blocks loop triton) compile_modes=(true reduce-overhead)
  fit=(--data.init_args.num_workers 8)
  test=(--data.init_args.batch_size 250)
  accelerator=gpu
fi

if [ ! -f "$results/tests.log" ]; then
  log "tests: ${tests[*]}"
  python -m pytest -q "${tests[@]}" > "$results/tests.partial" 2>&1 || log "tests FAILED (see tests.log)"
  mv "$results/tests.partial" "$results/tests.log"
  log "$(tail -1 "$results/tests.log")"
fi

if [ ! -f "$results/ops.json" ]; then
  log "ops benchmark"
  python benchmarks/ops.py --device "$device" --softmax "${ops[@]}" > "$results/ops.partial"
  mv "$results/ops.partial" "$results/ops.json"
fi

for backend in "${backends[@]}"; do
  out="$results/train_$backend.json"
  [ -f "$out" ] && continue
  log "training step, backend $backend"
  python benchmarks/train_throughput.py --models dfn --device "$device" --backend "$backend" \
    "${train[@]}" > "$out.partial" && mv "$out.partial" "$out" || log "backend $backend failed"
done
python - "$results" <<'EOF' > "$results/backend.txt"
import glob, json, sys
failed = [line for line in open(f"{sys.argv[1]}/tests.log") if line.startswith("FAILED")]
times = {}
for path in glob.glob(f"{sys.argv[1]}/train_*.json"):
    model = json.load(open(path))["models"][0]
    if not model["compiled"] and model.get("channels_last", True) and not any(model["backend"] in line for line in failed):
        times[model["backend"]] = model["seconds_per_iteration"]
print(min(times, key=times.get) if times else "auto")       # a backend whose tests failed never trains
EOF
backend=$(cat "$results/backend.txt")
log "fastest eager backend: $backend"
out="$results/train_${backend}_nchw.json"
if [ ! -f "$out" ]; then
  log "training step, backend $backend, NCHW weights"
  python benchmarks/train_throughput.py --models dfn --device "$device" --backend "$backend" \
    --channels_last false "${train[@]}" > "$out.partial" && mv "$out.partial" "$out" || log "NCHW step failed"
fi
for mode in "${compile_modes[@]}"; do
  out="$results/train_${backend}_compile_$mode.json"
  [ -f "$out" ] && continue
  log "training step, backend $backend, torch.compile $mode"
  python benchmarks/train_throughput.py --models dfn --device "$device" --backend "$backend" \
    --compile "$mode" "${train[@]}" > "$out.partial" && mv "$out.partial" "$out" || log "compile $mode failed"
done

run="$results/run"
resume=results/checkpoints/moving_mnist_dfn_h100_step3920.ckpt
[ -f "$run/checkpoints/last.ckpt" ] && resume="$run/checkpoints/last.ckpt"
step() { python -c "import torch,sys; print(torch.load(sys.argv[1], map_location='cpu', weights_only=True)['global_step'])" "$1"; }
target=$( [ "$dry" = 1 ] && echo 3921 || echo 20000 )
csv=(--trainer.logger lightning.pytorch.loggers.CSVLogger --trainer.logger.init_args.name csv)
if [ "$(step "$resume")" -lt "$target" ]; then
  reserve=$( [ "$dry" = 1 ] && echo 0 || echo 150 )          # for the test and the copy to $OUT
  window=$(( $(left) - reserve ))
  log "fit from $resume (step $(step "$resume")) for at most ${window}s, backend $backend"
  python -m dfn fit --config configs/moving_mnist.yaml --run_dir "$run" --ckpt_path "$resume" \
    --trainer.accelerator "$accelerator" --model.init_args.predictor.init_args.backend "$backend" \
    "${csv[@]}" "${fit[@]}" > "$results/fit_$(date +%s).log" 2>&1 &
  fit_pid=$!
  deadline=$(( SECONDS + window ))
  while kill -0 "$fit_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 1; done
  kill -TERM "$fit_pid" 2>/dev/null || true       # the main process only: it saves and stops
  wait "$fit_pid" || log "fit stopped with status $? (a SIGTERM stop is 143)"
fi

last="$run/checkpoints/last.ckpt"
if [ -f "$last" ] && [ "$(step "$last")" -ge "$target" ] && [ ! -f "$results/test.json" ]; then
  log "test of step $(step "$last")"
  python -m dfn test --config configs/moving_mnist.yaml --run_dir "$run" --ckpt_path "$last" \
    --trainer.accelerator "$accelerator" --model.init_args.predictor.init_args.backend "$backend" \
    "${csv[@]}" "${test[@]}" > "$results/test.log" 2>&1
  cp "$(ls -t "$run"/test_results*.json | head -1)" "$results/test.json"
fi
[ -f "$last" ] && log "last checkpoint: step $(step "$last")"

if [ -n "${OUT:-}" ]; then
  tar -czf "$OUT/$(basename "$results").tar.gz" --exclude='*.ckpt' -C "$(dirname "$results")" "$(basename "$results")"
  [ -f "$last" ] && cp "$last" "$OUT/last.ckpt"
fi
log "done"
