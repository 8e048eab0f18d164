#!/usr/bin/env python
"""jaxpot's MACE and mace-torch's at random initialisation: RMS force and RMS atomic energy.

A diagnostic for issue 4's accuracy parity: two models with the same parameter shapes should
start from outputs of the same size. Both at mace_parity's hyperparameters (scale 1, shift 0,
E0 0, avg_num_neighbors 12.134), float64, on one frame, averaged over seeds; mace-torch runs in its
own venv (benchmarks/peers/mace_torch_init_scale.py). One JSON line per code and width.

  python benchmarks/mace_init_scale.py --data ../shared/data/acac/train_300K.xyz
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import ase.io
import numpy as np

import jaxpot

PEERS = os.environ.get("PEERS", "/tmp/peers")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/acac/train_300K.xyz"))
    p.add_argument("--frame", type=int, default=0)
    p.add_argument("--widths", default="32,128")
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--peer-python", default=f"{PEERS}/torch-venv/bin/python")
    args = p.parse_args()
    atoms = ase.io.read(args.data, args.frame)
    species = sorted({int(z) for z in atoms.numbers})
    for width in (int(w) for w in args.widths.split(",")):
        forces, energies = [], []
        for seed in range(args.seeds):
            pot = jaxpot.Potential.create("mace", species, 5.0, seed=seed, dtype="float64",
                                          hidden_irreps=f"{width}x0e+{width}x1o", avg_num_neighbors=12.134)
            forces.append(float(np.sqrt(np.mean(pot.calculate(atoms)["forces"] ** 2))))
            g = pot.prepare(pot.graph(atoms))
            readouts = pot.module.apply(pot.params, g, method=jaxpot.heads.AtomisticModel.features).array[:, :2]
            energies.append(float(np.sqrt(np.mean(np.asarray(readouts).sum(-1)[: len(atoms)] ** 2))))
        print(json.dumps({"code": "jaxpot", "width": width, "seeds": args.seeds, "force_rms": float(np.mean(forces)),
                          "force_rms_std": float(np.std(forces)), "atomic_energy_rms": float(np.mean(energies)),
                          "atomic_energy_is": "sum of the layer readouts (the energy head's input)"}), flush=True)
    if Path(args.peer_python).is_file():
        peer = Path(__file__).resolve().parent / "peers" / "mace_torch_init_scale.py"
        return subprocess.call([args.peer_python, str(peer), "--data", args.data, "--frame", str(args.frame),
                                "--widths", args.widths, "--seeds", str(args.seeds)])
    print(f"# no peer interpreter at {args.peer_python}; mace-torch skipped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
