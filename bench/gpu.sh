#!/usr/bin/env bash
# The GPU benchmarks in one command, for a single H100/H200 machine that has torch, numpy and OpenCV, no
# network and none of our other dependencies. CARRY is the folder bench/gpu_carry.py builds (wheels and
# pre-extracted 128 px facesets; with the repository <= 64 MiB); OUT (default ./gpu-out) receives the logs and
# the held-out outputs (one file per direction, each under 16 MiB). Two runs of at most 10 minutes each
# (QUALITY_MINUTES shortens the second):
#
#   bench/gpu.sh CARRY 1 [OUT]   # training benchmark (ours vs the classic, 128/256 px, bf16) + swap model stage
#   bench/gpu.sh CARRY 2 [OUT]   # the quality protocol: 128 preset at 128 px, batch 64, 8.5 minutes of training
#                                # (RUN=name keeps a run's work, outputs and log apart, to run two at once; on an
#                                # H200 each then made 55% of the steps it makes alone)
#   bench/gpu.sh CARRY 3 [OUT]   # the speed levers run 1 left untried: torch.compile, and twice the batch
#   bench/gpu.sh CARRY 4 [OUT]   # a base first (BASE_MINUTES, default 3.5, on CARRY/facesets/pool: gpu_carry.py
#                                # --pool), then part 2's protocol from it (--init-from) for QUALITY_MINUTES (5)
#
# dlib (and its 95 MiB landmark model) does not travel, so run 2 saves the model's held-out outputs and
# prints what needs no face analysis (steps, PSNR, sharpness). The outputs come back as OUT/heldout.tar.aa, .ab,
# ... (the device tool brings back at most 8 files of at most 16 MiB each); score them back home, by the same scorer:
#   cat OUT/heldout.tar.* | tar xf - -C OUT
#   python bench/quality.py --score-outputs OUT/heldout --facesets-from CARRY/facesets --max-faces 256
set -euo pipefail
CARRY=$(cd "${1:?usage: bench/gpu.sh CARRY 1|2|3|4 [OUT]}" && pwd)
PART=${2:?usage: bench/gpu.sh CARRY 1|2|3|4 [OUT]}
OUT=${3:-gpu-out}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
MAX_FACES=${MAX_FACES:-256}
DEVICE=${DEVICE:-cuda}  # dry run anywhere: DEVICE=cpu BATCH=2 MAX_FACES=8 QUALITY_ARGS="--steps 1" (part 4 also BASE_ARGS="--steps 2")
BATCH=${BATCH:-64}
RUN=${RUN:+-$RUN}  # part 2: suffix of the work dir, the held-out outputs and the log

# Wheels are zip files: unpacked onto PYTHONPATH they work without pip or a venv (all are pure or abi3).
DEPS=$(mktemp -d)
for wheel in "$CARRY"/wheels/*.whl; do "$PY" -m zipfile -e "$wheel" "$DEPS"; done
export PYTHONPATH="$DEPS:$REPO:$REPO/bench${PYTHONPATH:+:$PYTHONPATH}"
# PyAV, OpenImageIO and OpenColorIO do not travel (too large); stand-ins let the modules that import them load.
STUBS=$(mktemp -d)
cp "$REPO/bench/gpu_stubs/missing.py" "$STUBS"
for module in av OpenImageIO PyOpenColorIO; do
    "$PY" -c "import $module" 2>/dev/null || cp -r "$REPO/bench/gpu_stubs/$module" "$STUBS"
done
export PYTHONPATH="$PYTHONPATH:$STUBS"
cd "$REPO"
if [ "$DEVICE" = cuda ]; then
    "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA'; print(torch.__version__, torch.cuda.get_device_name())"
fi

F="$CARRY/facesets"
# The quality protocol for MINUTES (then any extra arguments), its held-out outputs packed for the trip back.
protocol() {
    local minutes=$1
    shift
    "$PY" bench/quality.py --device "$DEVICE" --precision bf16 --preset 128 --batch-size "$BATCH" --minutes "$minutes" \
        --facesets-from "$F" --work "/tmp/swapface-gpu$RUN" --model-dir "/tmp/swapface-gpu$RUN/model" --fresh \
        --max-faces "$MAX_FACES" --outputs-to "$OUT/heldout$RUN" "$@" ${QUALITY_ARGS:-} 2>&1 | tee "$OUT/quality$RUN.log"
    tar cf - -C "$OUT" "heldout$RUN" | split -b 15M - "$OUT/heldout$RUN.tar."
    rm -r "${OUT:?}/heldout$RUN"
}
case "$PART" in
1)
    "$PY" bench/train.py --device "$DEVICE" --precision bf16 --batch-size "$BATCH" --steps 30 --warmup 5 \
        --resolutions 128,256 --facesets "$F/a-train" "$F/b-train" 2>&1 | tee "$OUT/train.log"
    "$PY" bench/gpu_model_speed.py --device "$DEVICE" 2>&1 | tee "$OUT/swap_model.log"
    ;;
2)
    protocol "${QUALITY_MINUTES:-8.5}"
    ;;
4)
    "$PY" bench/pretrain.py "$F/pool" "/tmp/swapface-base$RUN" --device "$DEVICE" --precision bf16 --preset 128 \
        --batch-size "$BATCH" --minutes "${BASE_MINUTES:-3.5}" ${BASE_ARGS:-} 2>&1 | tee "$OUT/base$RUN.log"
    protocol "${QUALITY_MINUTES:-5}" --init-from "/tmp/swapface-base$RUN"
    ;;
3)
    # Compiling happens in the warm-up steps; the classic baseline runs eager again, so ratios stay comparable.
    "$PY" bench/train.py --device "$DEVICE" --precision bf16 --batch-size "$BATCH" --steps 30 --warmup 10 --compile \
        --resolutions 128,256 --facesets "$F/a-train" "$F/b-train" 2>&1 | tee "$OUT/train_compile.log"
    "$PY" bench/train.py --device "$DEVICE" --precision bf16 --batch-size $((2 * BATCH)) --steps 30 --warmup 5 \
        --resolutions 256 --facesets "$F/a-train" "$F/b-train" 2>&1 | tee "$OUT/train_batch.log"
    ;;
*)
    echo "part must be 1, 2, 3 or 4" >&2
    exit 2
    ;;
esac
