#!/usr/bin/env bash
# The CUDA checks of gsedit in one run, for a machine with a GPU (no network needed):
#   1. the device and the package versions;
#   2. gsplat's CUDA rasterizer against gsedit's PyTorch one: renders and gradients
#      (tests/render/test_gsplat_parity.py; on CPU they skip);
#   3. one full edit turn with InstructPix2Pix at each size of $SIZES (tools/bench_turn.py: the real
#      weights when cached, else a random SD1.5 of the same cost), split by phase, with peak memory;
#   4. the memory estimate against the measured peak: bench_turn prints both for every size (its
#      step 3 with the default settings), and step "memory" repeats 512 and 1024 px with the
#      low-memory settings the planner picks for small cards (VAE tiling, one view per editor call);
#   5. 3DGS vs nerfacto on the same scene and turns (tools/bench_backends.py).
# Every step's output goes to $OUT/NAME.log as well as the terminal, and a failing step does not
# stop the later ones; the exit status is that of the worst step.
#
#   OUT=gpu_checks bash tools/gpu_checks.sh                                # the full set, CUDA
#   SIZES="64" TURN_ITERS=10 BACKENDS_ARGS="--views 4 --size 32 --iters 10 --refit-iters 30" \
#       bash tools/gpu_checks.sh                                            # a CPU dry run, ~3 min
#
# On a machine without gsedit's dependencies (a lent GPU machine has torch but no package index),
# carry wheels built or downloaded elsewhere and install them first without dependencies, e.g.
#   python3 -m pip install --no-index --no-deps --target /tmp/site wheels/*.whl && export PYTHONPATH=/tmp/site:.
# gsedit needs there, beyond torch/torchvision/transformers/accelerate/safetensors/imageio/rich:
# gsplat (its CUDA code compiles on first use: minutes, nvcc and ninja needed), plyfile, tyro
# (+ docstring-parser, typeguard, shtab), diffusers, spandrel, psutil, pyyaml, torchmetrics,
# and for step 4 nerfstudio 1.1.5 (--no-deps) with nerfacc.
set -uo pipefail

OUT=${OUT:-gpu_checks}
SIZES=${SIZES:-512 1024}
TURN_ITERS=${TURN_ITERS:-40}
BACKENDS_ARGS=${BACKENDS_ARGS:---views 24 --size 256 --points 20000 --iters 300 --refit-iters 3000}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
status=0

step() {  # step NAME COMMAND...: runs it, tees its output to $OUT/NAME.log, keeps the worst status
    local name=$1
    shift
    echo "== $name: $*" | tee "$OUT/$name.log"
    PYTHONUNBUFFERED=1 "$@" 2>&1 | tee -a "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc" | tee -a "$OUT/$name.log"
    ((rc > status)) && status=$rc
    return 0
}

step device "$PYTHON" -c "
import torch, importlib.metadata as md
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())
if torch.cuda.is_available():
    print('device', torch.cuda.get_device_name(), round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1), 'GiB')
for name in ('gsplat', 'diffusers', 'transformers', 'nerfstudio'):
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        print(name, 'missing')
"
step parity "$PYTHON" -m pytest tests/render/test_gsplat_parity.py -q -rs -p no:cacheprovider
# shellcheck disable=SC2086  # SIZES is a list of numbers
step bench_turn "$PYTHON" tools/bench_turn.py --sizes $SIZES --iters "$TURN_ITERS"
step memory "$PYTHON" tools/bench_turn.py --sizes 512 1024 --iters 10 --ip2p.vae-tiling --ip2p.max-batch 1
# shellcheck disable=SC2086  # BACKENDS_ARGS is a list of options
step bench_backends "$PYTHON" tools/bench_backends.py $BACKENDS_ARGS --out "$OUT/backends" --json "$OUT/backends.json"
exit "$status"
