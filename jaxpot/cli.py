"""Command line: ``jaxpot models | example | evaluate``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _models(args) -> int:
    import jaxpot

    for name in jaxpot.models.available():
        print(f"{name:10s} {json.dumps(jaxpot.models.hyperparameters(name))}")
    return 0


def _example(args) -> int:
    """Build a PaiNN, evaluate ethanol and a Si cell, check forces and stress, save and reload."""
    import numpy as np
    from ase.build import bulk, molecule

    import jaxpot

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {}
    print(f"jaxpot {jaxpot.__version__}: building PaiNN (features={args.features}) for H, C, O, Si")
    pot = jaxpot.Potential.create("painn", ["H", "C", "O", "Si"], 5.0, features=args.features, dtype="float64")
    print(f"  {pot.num_parameters:,} parameters")

    eth = molecule("CH3CH2OH")
    t0 = time.perf_counter()
    r = pot.calculate(eth)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = pot.calculate(eth)
    t_second = time.perf_counter() - t0
    print(f"ethanol: E = {r['energy']:.6f} eV, max |F| = {np.abs(r['forces']).max():.4f} eV/Å "
          f"(first call {t_first:.2f} s with compilation, then {t_second * 1e3:.1f} ms)")

    h = 1e-5  # PaiNN's vector norms give sharp third derivatives; keep the step small
    fd = []
    for i, k in [(0, 0), (3, 1), (8, 2)]:
        plus, minus = eth.copy(), eth.copy()
        plus.positions[i, k] += h
        minus.positions[i, k] -= h
        fd.append(abs(-(pot.calculate(plus)["energy"] - pot.calculate(minus)["energy"]) / (2 * h) - r["forces"][i, k]))
    print(f"  forces vs central finite differences: max deviation {max(fd):.2e} eV/Å")

    g = pot.graph(eth)
    hess = np.asarray(pot.hessian(g))[: len(eth), :, : len(eth), :].reshape(3 * len(eth), 3 * len(eth))
    print(f"  Hessian {hess.shape}, asymmetry {np.abs(hess - hess.T).max():.1e} eV/Å²")

    si = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 2, 2))
    si.rattle(0.05, seed=1)
    rs = pot.calculate(si)
    print(f"Si{len(si)}: E = {rs['energy']:.4f} eV, stress (eV/Å³, Voigt) = {np.round(rs['stress'], 5).tolist()}")

    path = out / "painn_untrained"
    pot.save(path)
    again = jaxpot.load(path).calculate(eth)
    same = again["energy"] == r["energy"] and np.array_equal(again["forces"], r["forces"])
    print(f"saved to {path}; reloaded model reproduces energy and forces exactly: {same}")
    report.update(
        ethanol_energy=r["energy"], fd_max_deviation=max(fd), hessian_asymmetry=float(np.abs(hess - hess.T).max()),
        si_stress=rs["stress"].tolist(), reload_identical=bool(same), model_dir=str(path),
    )
    (out / "example.json").write_text(json.dumps(report, indent=2))
    print(f"summary written to {out / 'example.json'}")
    return 0 if same and max(fd) < 1e-5 else 1


def _evaluate(args) -> int:
    import ase.io
    import numpy as np

    import jaxpot

    pot = jaxpot.load(args.model)
    if args.float64:
        pot = pot.astype("float64")
    frames = ase.io.read(args.structures, index=args.index)
    frames = frames if isinstance(frames, list) else [frames]
    for k, atoms in enumerate(frames):
        r = pot.calculate(atoms)
        row = {"frame": k, "n_atoms": len(atoms), "energy": r["energy"], "max_force": float(np.abs(r["forces"]).max())}
        if "stress" in r:
            row["stress"] = r["stress"].tolist()
        print(json.dumps(row))
    return 0


def _label(args) -> int:
    """Sample structures with a reference method (or take them from a file) and label them."""
    import ase.io
    import numpy as np

    from jaxpot import reference

    if Path(args.structure).exists():
        frames = ase.io.read(args.structure, index=":")
        frames = frames if isinstance(frames, list) else [frames]
        source = f"{args.structure} ({len(frames)} structure(s))"
    else:
        from ase.build import molecule

        try:
            frames = [molecule(args.structure)]
        except KeyError:
            raise ValueError(
                f"{args.structure!r} is neither a file nor a molecule name known to ase.build.molecule "
                "(e.g. H2O, CH4, CH3CH2OH)"
            ) from None
        source = f"ase.build.molecule({args.structure!r})"
    if not frames:
        raise ValueError(f"{args.structure} holds no structures")
    options = {k: v for k, v in (("charge", args.charge), ("multiplicity", args.multiplicity)) if v is not None}
    try:
        calc = reference.calculator(args.method, **options)
    except ImportError as err:
        print(f"jaxpot: error: {err}", file=sys.stderr)
        return 2
    progress = not args.quiet
    print(f"jaxpot label: {source}, method {args.method}, sampling {args.sample}", file=sys.stderr)
    try:
        if args.sample == "md":
            frames = reference.sample_md(
                frames[0], calc, args.temperature, args.frames, interval=args.interval, timestep=args.timestep,
                seed=args.seed, friction=args.friction, equilibration=args.equilibration, progress=progress,
            )
        elif args.sample == "normal-modes":
            frames = reference.sample_normal_modes(frames[0], calc, args.temperature, args.frames, seed=args.seed)
        # Round positions to the digits written, so the labels belong exactly to the stored positions.
        for atoms in frames:
            atoms.positions = np.round(atoms.positions, args.digits)
        frames = reference.label(frames, calc, progress=progress)
    except RuntimeError as err:  # ase's CalculationFailed, or MD that blew up
        print(f"jaxpot: error: {err}", file=sys.stderr)
        return 1
    out = reference.write_frames(args.out, frames, digits=args.digits)
    energies = np.array([a.info["energy"] for a in frames])
    max_force = max(float(np.abs(a.arrays["forces"]).max()) for a in frames)
    print(json.dumps({
        "out": str(out), "frames": len(frames), "bytes": out.stat().st_size, "energy_min": float(energies.min()),
        "energy_max": float(energies.max()), "max_abs_force": max_force,
        "labels": sorted(set(frames[0].info) & {"energy", "dipole"} | set(frames[0].arrays) & {"forces", "charges"}),
    }))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="jaxpot", description="Machine-learned interatomic potentials in JAX.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the registered models and their default hyperparameters")
    p.set_defaults(func=_models)

    p = sub.add_parser("example", help="build a PaiNN and run energy, forces, stress, Hessian, save/load end to end")
    p.add_argument("--out", default="jaxpot_example", help="output folder (default: %(default)s)")
    p.add_argument("--features", type=int, default=64, help="PaiNN feature width (default: %(default)s)")
    p.set_defaults(func=_example)

    p = sub.add_parser("evaluate", help="energy, forces (and stress) of every structure in a file")
    p.add_argument("model", help="a saved model directory")
    p.add_argument("structures", help="any file ASE reads (extxyz, POSCAR, ...)")
    p.add_argument("--index", default=":", help="ASE index of frames (default: all)")
    p.add_argument("--float64", action="store_true", help="evaluate in double precision")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("label", help="sample structures with a reference method (GFN2-xTB, PySCF) and label them")
    p.add_argument("structure", help="any file ASE reads (sampling starts from its first structure), "
                                     "or a molecule name known to ase.build.molecule (CH3CH2OH)")
    p.add_argument("--method", default="gfn2-xtb",
                   help="gfn2-xtb, gfn1-xtb, ipea1-xtb (tblite) or functional/basis (PySCF, e.g. b3lyp/def2-svp)")
    p.add_argument("--sample", default="md", choices=["md", "normal-modes", "none"],
                   help="md: Langevin MD; normal-modes: Boltzmann displacements along the normal modes; "
                        "none: label the structures as given (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=500.0, help="K (default: %(default)s)")
    p.add_argument("--frames", type=int, default=100, help="number of frames to sample (default: %(default)s)")
    p.add_argument("--interval", type=int, default=10, help="MD steps between kept frames (default: %(default)s)")
    p.add_argument("--timestep", type=float, default=0.5, help="MD time step in fs (default: %(default)s)")
    p.add_argument("--friction", type=float, default=0.01, help="Langevin friction in 1/fs (default: %(default)s)")
    p.add_argument("--equilibration", type=int, default=1000,
                   help="MD steps before the first frame (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--charge", type=int, default=None,
                   help="total charge (default: tblite: sum of the initial charges; PySCF: 0)")
    p.add_argument("--multiplicity", type=int, default=None, help="spin multiplicity (default: lowest)")
    p.add_argument("--digits", type=int, default=6,
                   help="decimals for positions, forces, charges (default: %(default)s)")
    p.add_argument("--out", default="frames.xyz", help="extended XYZ output (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_label)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:
        print(f"jaxpot: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
