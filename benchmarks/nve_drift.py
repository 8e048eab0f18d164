#!/usr/bin/env python
"""Energy conservation of a trained model in NVE molecular dynamics with jax-md.

Runs ``jaxpot.md.simulate(potential, atoms, "nve", timestep=0.5, steps=...)`` (velocity Verlet,
jax-md, neighbour list on device) for each requested precision, from one frame of the bundled
GFN2-xTB ethanol set (or ``--structure``) with Maxwell-Boltzmann momenta at ``--temperature``
(seeded, zero total momentum), and reports

* ``drift_meV_per_atom_per_ps``: the slope of a least-squares line through the total energy
  (potential + kinetic) against time, divided by the number of atoms;
* ``max_deviation_meV_per_atom``: the largest |E_tot(t) - E_tot(0)| / N;
* ``fluctuation_meV_per_atom``: the standard deviation of E_tot / N;
* the mean temperature, and the wall time.

The issue's target is |drift| < 0.1 meV/atom/ps in float64. One JSON line per precision; with
``--plot`` a PNG of E_tot(t) - E_tot(0) for each.

Examples:
  jaxpot quickstart --out runs/quickstart            # trains the model (or use any trained one)
  python benchmarks/nve_drift.py runs/quickstart/model --ps 10 --out results/nve_drift.jsonl --plot results/nve_drift.png
  python benchmarks/nve_drift.py runs/quickstart/model --ps 0.5     # a short check
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def run(model_dir: str, dtype: str, atoms, args) -> tuple[dict, object]:
    import numpy as np

    import jaxpot
    import jaxpot.md

    pot = jaxpot.load(model_dir).astype(dtype)
    steps = int(round(args.ps * 1000.0 / args.timestep))
    t0 = time.perf_counter()
    frames = jaxpot.md.simulate(pot, atoms.copy(), "nve", temperature=args.temperature, timestep=args.timestep,
                                steps=steps, write_every=args.write_every, seed=args.seed, progress=args.progress,
                                out=args.trajectory.format(dtype=dtype) if args.trajectory else None)
    wall = time.perf_counter() - t0
    n = len(atoms)
    t_ps = np.array([f.info["time"] for f in frames]) / 1000.0
    e_tot = np.array([f.info["total_energy"] for f in frames])
    temps = np.array([f.info["temperature"] for f in frames])
    slope = np.polyfit(t_ps, e_tot, 1)[0]  # eV/ps
    dev = e_tot - e_tot[0]
    first, last = frames[0].info, frames[-1].info
    rec = {
        "model": model_dir, "dtype": dtype, "n_atoms": n, "timestep_fs": args.timestep, "steps": steps,
        "simulated_ps": float(t_ps[-1]), "temperature_K_initial": args.temperature,
        "temperature_K_mean": float(temps.mean()),
        "drift_meV_per_atom_per_ps": 1e3 * slope / n,
        "max_deviation_meV_per_atom": 1e3 * float(np.abs(dev).max()) / n,
        "fluctuation_meV_per_atom": 1e3 * float(e_tot.std()) / n,
        "target_abs_drift_meV_per_atom_per_ps": 0.1,
        "reallocations": int(last["reallocations"]),
        "steps_per_s": (last["step"] - first["step"]) / (last["wall_time"] - first["wall_time"]),
        "wall_s": round(wall, 2), "seed": args.seed, "write_every": args.write_every,
        "structure": args.structure or f"bundled ethanol frame {args.frame}",
    }
    return rec, (t_ps, 1e3 * dev / n)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a jaxpot.load-able model directory")
    p.add_argument("--structure", default=None, help="structure file (ASE-readable); default: bundled ethanol")
    p.add_argument("--frame", type=int, default=0, help="frame of the structure file")
    p.add_argument("--dtypes", default="float64,float32")
    p.add_argument("--ps", type=float, default=10.0, help="simulated time per run (ps)")
    p.add_argument("--timestep", type=float, default=0.5, help="fs")
    p.add_argument("--temperature", type=float, default=300.0, help="K, initial Maxwell-Boltzmann momenta")
    p.add_argument("--write-every", type=int, default=20, help="steps per jitted chunk (one energy sample each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trajectory", default=None, help="write frames to this extxyz ({dtype} is replaced)")
    p.add_argument("--plot", default=None, help="PNG of the total-energy deviation against time")
    p.add_argument("--out", default=None, help="append JSON lines here")
    p.add_argument("--progress", action="store_true")
    args = p.parse_args(argv)

    import ase.io
    import numpy as np
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation

    if args.structure:
        atoms = ase.io.read(args.structure, index=args.frame)
    else:
        from jaxpot.reference import bundled_path

        atoms = ase.io.read(bundled_path("ethanol"), index=args.frame)
    atoms.calc = None
    MaxwellBoltzmannDistribution(atoms, temperature_K=args.temperature, rng=np.random.default_rng(args.seed))
    Stationary(atoms)
    if not any(atoms.pbc):
        ZeroRotation(atoms)

    curves = {}
    for dtype in args.dtypes.split(","):
        rec, curves[dtype] = run(args.model, dtype, atoms, args)
        print(json.dumps(rec), flush=True)
        if args.out:
            with open(args.out, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
        print(f"# {dtype}: drift {rec['drift_meV_per_atom_per_ps']:+.4f} meV/atom/ps, max |dE| "
              f"{rec['max_deviation_meV_per_atom']:.4f} meV/atom over {rec['simulated_ps']:.2f} ps, "
              f"{rec['steps_per_s']:.0f} steps/s", file=sys.stderr)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        for dtype, (t, dev) in curves.items():
            ax.plot(t, dev, label=dtype, lw=0.8)
        ax.set_xlabel("time (ps)")
        ax.set_ylabel("E_tot(t) - E_tot(0) (meV/atom)")
        ax.set_title(f"NVE, {args.timestep} fs, {len(atoms)} atoms")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=150)
    return 0


if __name__ == "__main__":
    sys.exit(main())
