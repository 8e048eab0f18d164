#!/usr/bin/env python
"""mace-torch's MACE at random initialisation: RMS force and RMS atomic energy on one frame.

The peer half of ``benchmarks/mace_init_scale.py`` (run it with the peer's interpreter,
$PEERS/torch-venv/bin/python). ScaleShiftMACE at mace_parity's hyperparameters (scale 1, shift 0,
E0 0), float64, for each width and seed. Prints one JSON line per width.
"""

import argparse
import json
import os

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # mace 0.3.16 caches its U matrices with torch.load

import ase.io
import numpy as np
import torch
from e3nn import o3
from mace import data as mace_data
from mace import modules, tools
from mace.tools import torch_geometric


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--frame", type=int, default=0)
    p.add_argument("--widths", default="32,128")
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--avg-num-neighbors", type=float, default=12.134)
    args = p.parse_args()
    torch.set_default_dtype(torch.float64)
    atoms = ase.io.read(args.data, args.frame)
    zs = sorted({int(z) for z in atoms.numbers})
    config = mace_data.config_from_atoms(atoms, key_specification=mace_data.KeySpecification(info_keys={}, arrays_keys={}))
    graph = mace_data.AtomicData.from_config(config, z_table=tools.AtomicNumberTable(zs), cutoff=5.0)
    batch = torch_geometric.Batch.from_data_list([graph]).to_dict()
    for width in (int(w) for w in args.widths.split(",")):
        forces, energies = [], []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            model = modules.ScaleShiftMACE(
                r_max=5.0, num_bessel=8, num_polynomial_cutoff=5, max_ell=3,
                interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
                interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
                num_interactions=2, num_elements=len(zs), hidden_irreps=o3.Irreps(f"{width}x0e+{width}x1o"),
                MLP_irreps=o3.Irreps("16x0e"), atomic_energies=np.zeros(len(zs)),
                avg_num_neighbors=args.avg_num_neighbors, atomic_numbers=zs, correlation=3,
                gate=torch.nn.functional.silu, radial_MLP=[64, 64, 64], atomic_inter_scale=1.0, atomic_inter_shift=0.0,
            ).double()
            out = model(batch, training=False, compute_force=True)
            forces.append(float(out["forces"].pow(2).mean().sqrt()))
            energies.append(float(out["node_energy"].pow(2).mean().sqrt()))
        print(json.dumps({"code": "mace-torch", "width": width, "seeds": args.seeds,
                          "force_rms": float(np.mean(forces)), "force_rms_std": float(np.std(forces)),
                          "atomic_energy_rms": float(np.mean(energies))}), flush=True)


if __name__ == "__main__":
    main()
