#!/usr/bin/env bash
# The fairchem peer's interpreter for benchmarks/peers/fairchem_speed.py (speed.py --peer fairchem):
# $PEERS/fairchem-venv (PEERS=/tmp/peers) with torch 2.13.0 (CPU) and fairchem-core 1.10.0.
#
# Why this way: fairchem-core 2.x (which pins torch~=2.13.0) no longer ships SCN, eSCN or
# EquiformerV2 (only UMA/eSEN-style models); 1.10.0, the last 1.x, has all three but pins
# torch~=2.4.0 and numpy<2. So fairchem-core is installed with --no-deps and its run-time
# dependencies one by one under the constraint torch==2.13.0 (tested with torch 2.13.0+cpu,
# numpy 1.26.4, torch-geometric 2.8.1, e3nn 0.6.0). fairchem.core.common.utils imports
# torch_scatter at module level; PyPI has only its source, so it is compiled here against the
# installed torch (C++ only, CPU; several minutes on two cores). SCN, eSCN and EquiformerV2
# themselves do not call torch_scatter. wandb, tensorboard, hydra-core and torchtnt (training
# and logging only) are left out.
set -euo pipefail
PEERS="${PEERS:-/tmp/peers}"
VENV="$PEERS/fairchem-venv"
python3 -m venv "$VENV"
"$VENV/bin/pip" install torch==2.13.0
"$VENV/bin/pip" install --no-deps fairchem-core==1.10.0
CONSTRAINTS="$(mktemp)"
echo "torch==2.13.0" > "$CONSTRAINTS"
"$VENV/bin/pip" install -c "$CONSTRAINTS" ase e3nn torch-geometric "numpy<2" pyyaml matplotlib lmdb submitit numba \
    tqdm requests orjson "pydantic>=2.10" huggingface-hub pymatgen
MAX_JOBS="${MAX_JOBS:-2}" FORCE_ONLY_CPU=1 "$VENV/bin/pip" install --no-build-isolation --no-deps torch-scatter==2.1.2
"$VENV/bin/python" -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__; \
import fairchem.core.models.scn.scn, fairchem.core.models.escn.escn, fairchem.core.models.equiformer_v2.equiformer_v2; \
print('fairchem peer ready: torch', torch.__version__)"
