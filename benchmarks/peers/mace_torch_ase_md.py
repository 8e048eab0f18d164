#!/usr/bin/env python
"""The peer side of benchmarks/md_speed.py: mace-torch driven by ASE's velocity Verlet.

Run with the peer's own interpreter (mace-torch 0.3.16, torch 2.13.0 CPU), never jaxpot's:

    $PEERS/torch-venv/bin/python benchmarks/peers/mace_torch_ase_md.py --system water192

Builds ``mace.modules.ScaleShiftMACE`` from scratch (random weights) at the hyperparameters of
jaxpot's MACE speed issue (r_max 5, num_bessel 8, num_polynomial_cutoff 5, max_ell 3, two
interactions, 128x0e+128x1o, correlation 3, RealAgnostic(Residual)InteractionBlock, radial MLP
[64, 64, 64], MLP_irreps 16x0e), exactly as ``shared/bench/peers/mace_torch_speed.py`` does, with
the interaction energy scaled by ``--energy-scale`` (random forces otherwise tear the system
apart; weights do not change the cost). Every step the calculator does what
``mace.calculators.MACECalculator.calculate`` does: ``config_from_atoms`` ->
``AtomicData.from_config`` (neighbour list) -> a one-graph batch -> the model with
``compute_force=True``. NVE from Maxwell-Boltzmann momenta at ``--temperature`` (seeded), 0.5 fs;
the steps after ``--warmup`` are timed. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--system", default="water192")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timestep", type=float, default=0.5, help="fs")
    p.add_argument("--temperature", type=float, default=300.0)
    p.add_argument("--energy-scale", type=float, default=0.01)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--peers-harness", required=True)
    args = p.parse_args(argv)

    sys.path.insert(0, args.peers_harness)
    import peers_common as pc
    import numpy as np
    import torch
    from ase import units
    from ase.calculators.calculator import Calculator, all_changes
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from ase.md.verlet import VelocityVerlet

    torch.set_num_threads(args.threads)
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    torch.set_default_dtype(dtype)
    torch.manual_seed(args.seed)
    torch.serialization.add_safe_globals([slice])  # e3nn 0.4.4's constants.pt (see mace_torch_speed.py)
    from e3nn import o3
    from mace import data as mace_data
    from mace import modules, tools
    from mace.tools import torch_geometric

    if args.system == "water192":
        import ase.io

        path = Path(args.data_dir) / "periodic_water_deepmd" / "water_64_deepmd_example.xyz"
        atoms = next(a for a in ase.io.iread(path, index=":") if len(a) == 192)
        elements = ["H", "O"]
    else:
        atoms = pc.build_system(args.system, rattle=0.03, seed=args.seed)
        elements = pc.default_elements(args.system)
    atoms.calc = None
    from ase.data import atomic_numbers

    zs = sorted(atomic_numbers[e] for e in elements)
    z_table = tools.AtomicNumberTable(zs)
    r_max = 5.0
    keyspec = mace_data.KeySpecification(info_keys={}, arrays_keys={})

    def batch_of(a):
        config = mace_data.config_from_atoms(a, key_specification=keyspec)
        g = mace_data.AtomicData.from_config(config, z_table=z_table, cutoff=r_max)
        batch = torch_geometric.Batch.from_data_list([g]).to_dict()
        return {k: (v.to(dtype) if torch.is_tensor(v) and torch.is_floating_point(v) else v) for k, v in batch.items()}

    avg_nn = float(batch_of(atoms)["edge_index"].shape[1]) / len(atoms)
    model = modules.ScaleShiftMACE(
        r_max=r_max, num_bessel=8, num_polynomial_cutoff=5, max_ell=3,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
        num_interactions=2, num_elements=len(zs), hidden_irreps=o3.Irreps("128x0e+128x1o"),
        MLP_irreps=o3.Irreps("16x0e"), atomic_energies=np.zeros(len(zs)), avg_num_neighbors=avg_nn,
        atomic_numbers=zs, correlation=3, gate=modules.gate_dict["silu"], radial_MLP=[64, 64, 64],
        atomic_inter_scale=args.energy_scale, atomic_inter_shift=0.0,
    ).to(dtype)
    model.eval()
    for prm in model.parameters():
        prm.requires_grad_(False)

    class MACEAseCalculator(Calculator):
        implemented_properties = ["energy", "free_energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            out = model(batch_of(self.atoms), training=False, compute_force=True)
            e = float(out["energy"].detach().sum())
            self.results = {"energy": e, "free_energy": e,
                            "forces": out["forces"].detach().to(torch.float64).numpy()}

    MaxwellBoltzmannDistribution(atoms, temperature_K=args.temperature, rng=np.random.default_rng(args.seed))
    Stationary(atoms)
    atoms.calc = MACEAseCalculator()
    dyn = VelocityVerlet(atoms, timestep=args.timestep * units.fs)
    t0 = time.perf_counter()
    dyn.run(args.warmup)
    startup = time.perf_counter() - t0
    e_start = atoms.get_total_energy()
    t1 = time.perf_counter()
    dyn.run(args.steps)
    wall = time.perf_counter() - t1
    import mace

    print(json.dumps({
        "code": "mace-torch", "model": "MACE", "driver": "ase", "system": args.system, "dtype": args.dtype,
        "n_atoms": len(atoms), "steps": args.steps, "warmup": args.warmup, "steps_per_s": args.steps / wall,
        "ms_per_step": 1e3 * wall / args.steps, "startup_s": round(startup, 3),
        "total_energy_span_eV": float(abs(atoms.get_total_energy() - e_start)), "threads": args.threads,
        "versions": {"mace-torch": getattr(mace, "__version__", None), "torch": torch.__version__},
        "machine": pc.machine_info(),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
