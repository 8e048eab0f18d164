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
    """Errors against the file's labels (when it has them), else per-frame predictions."""
    import numpy as np

    import jaxpot
    from jaxpot.data import read

    pot = jaxpot.load(args.model)
    if args.float64:
        pot = pot.astype("float64")
    frames = read(args.structures, index=args.index)
    labelled = any("energy" in a.info or "forces" in a.arrays for a in frames)
    if labelled and not args.per_frame:
        from jaxpot.data import GraphLoader
        from jaxpot.train import evaluate

        loader = GraphLoader(frames, pot.cutoff, pot.species, args.batch_size, shuffle=False)
        metrics, errors = evaluate(pot, loader, keep_values=bool(args.plots))
        print(json.dumps({"model": args.model, "data": args.structures, "n_structures": len(frames), **metrics}, indent=2))
        if args.plots:
            from jaxpot.train.plots import plot_parity

            out = Path(args.plots)
            out.mkdir(parents=True, exist_ok=True)
            for key, label, unit in (("energy_per_atom", "energy per atom", "meV/atom"), ("forces", "force component", "meV/Å")):
                ref, pred = errors.parity(key)
                if ref.size:
                    print(f"wrote {plot_parity(ref, pred, label, unit, out / f'parity_{key}.png', scale=1e3)}")
        return 0
    for k, atoms in enumerate(frames):
        r = pot.calculate(atoms)
        row = {"frame": k, "n_atoms": len(atoms), "energy": r["energy"], "max_force": float(np.abs(r["forces"]).max())}
        if "stress" in r:
            row["stress"] = r["stress"].tolist()
        print(json.dumps(row))
    return 0


def _train(args) -> int:
    from jaxpot.train.config import load_config
    from jaxpot.train.run import run

    config = load_config(args.config)
    if args.output:
        config.output = args.output
    if args.no_progress:
        config.training.progress = False
    summary = run(config)
    print(json.dumps(summary, indent=2))
    return 0 if summary["stopped"] != "nan" else 1


def _quickstart(args) -> int:
    """Train PaiNN on the bundled GFN2-xTB ethanol set, evaluate it, write model, metrics, plots."""
    import time

    from jaxpot.reference import bundled_path
    from jaxpot.train.config import config_from_dict
    from jaxpot.train.run import run

    data = str(bundled_path("ethanol"))
    config = config_from_dict({
        "model": {"name": "painn", "cutoff": 5.0, "hparams": {"features": args.features, "num_interactions": 3}},
        "data": {"train": data, "n_train": args.n_train, "n_valid": args.n_valid, "n_test": args.n_test,
                 "batch_size": 10, "seed": 0},
        "training": {"epochs": args.epochs, "learning_rate": 5e-3, "schedule": "cosine", "warmup_steps": 20,
                     "weights": {"energy": 1.0, "forces": 100.0}, "swa_weights": {"energy": 1000.0, "forces": 100.0},
                     "swa_start": 0.75, "checkpoint_every": 100, "progress": not args.no_progress},
        "output": args.out,
    })
    print(f"jaxpot quickstart: PaiNN on {args.n_train} GFN2-xTB ethanol frames ({data}), {args.epochs} epochs")
    t0 = time.perf_counter()
    summary = run(config)
    valid = summary.get("valid", {})
    print(f"\ndone in {time.perf_counter() - t0:.0f} s. Validation ({args.n_valid} frames): "
          f"energy MAE {valid.get('energy_per_atom_mae', float('nan')) * 1e3:.2f} meV/atom "
          f"({valid.get('energy_mae', float('nan')) * 1e3:.1f} meV/molecule), "
          f"force MAE {valid.get('forces_mae', float('nan')) * 1e3:.1f} meV/Å")
    test = summary.get("test", {})
    if test:
        print(f"Test ({args.n_test} frames): energy MAE {test.get('energy_per_atom_mae', float('nan')) * 1e3:.2f} meV/atom, "
              f"force MAE {test.get('forces_mae', float('nan')) * 1e3:.1f} meV/Å")
    print(f"model: {summary['model']}   metrics: {Path(args.out) / 'metrics.jsonl'}   "
          f"plots: {Path(args.out) / 'learning_curves.png'}, parity_*_valid.png")
    return 0 if summary["stopped"] != "nan" else 1


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


def _read_structure(spec: str, index: str):
    """A file ASE reads (frame ``index``) or a molecule name known to ``ase.build.molecule``."""
    import ase.io

    if Path(spec).exists():
        return ase.io.read(spec, index=index)
    from ase.build import molecule

    try:
        return molecule(spec)
    except KeyError:
        raise ValueError(
            f"{spec!r} is neither a file nor a molecule name known to ase.build.molecule (e.g. H2O, CH3CH2OH)"
        ) from None


def _md(args) -> int:
    """Molecular dynamics (or a FIRE relaxation) with jax-md, writing an extended XYZ trajectory."""
    import numpy as np

    import jaxpot
    from jaxpot.md import simulate

    pot = jaxpot.load(args.model)
    if args.float64:
        pot = pot.astype("float64")
    atoms = _read_structure(args.structure, args.index)
    ensemble = {"nvt": "nvt_langevin", "langevin": "nvt_langevin", "nose_hoover": "nvt_nose_hoover"}.get(
        args.ensemble, args.ensemble
    )
    t0 = time.perf_counter()
    frames = simulate(
        pot, atoms, ensemble, temperature=args.temperature, timestep=args.timestep, steps=args.steps,
        write_every=args.write_every, out=args.out, seed=args.seed, friction=args.friction, pressure=args.pressure,
        fmax=args.fmax, progress=not args.no_progress,
    )
    seconds = time.perf_counter() - t0
    total = np.array([f.info["total_energy"] for f in frames])
    summary = {
        "out": args.out, "ensemble": ensemble, "atoms": len(atoms), "steps": int(frames[-1].info["step"]),
        "frames": len(frames), "seconds": round(seconds, 2),
        "final_temperature": frames[-1].info["temperature"], "final_energy": frames[-1].get_potential_energy(),
        "total_energy_drift": float(total[-1] - total[0]),
    }
    if ensemble == "npt":
        summary["final_volume"] = frames[-1].info["volume"]
    if ensemble == "fire":
        summary["max_force"] = float(np.abs(frames[-1].get_forces()).max())
    print(json.dumps(summary))
    return 0


def _export(args) -> int:
    """Serialize a model's energy/forces/stress function as StableHLO (jax.export)."""
    import jaxpot
    from jaxpot.export import export

    pot = jaxpot.load(args.model)
    if args.float64:
        pot = pot.astype("float64")
    platforms = [p for p in args.platforms.split(",") if p] if args.platforms else None
    out = export(pot, args.out, max_edges=args.max_edges, platforms=platforms)
    meta = json.loads((out / "exported.json").read_text())
    print(json.dumps({"out": str(out), "symbolic": meta["symbolic"], "artifacts": len(meta["artifacts"]),
                      "edge_capacities": [a["n_edge"] for a in meta["artifacts"]], "platforms": meta["platforms"]}))
    return 0


def _spectrum(args) -> int:
    """Relax a molecule, harmonic analysis with IR/Raman intensities, plot and table."""
    from jaxpot.spectra.command import run

    return run(args)


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
    p.add_argument("--per-frame", action="store_true", help="print predictions per frame even if the file has labels")
    p.add_argument("--batch-size", type=int, default=16, help="structures per batch (default: %(default)s)")
    p.add_argument("--plots", default=None, help="folder for parity plots (with labelled data)")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("train", help="train a potential from a YAML config (see jaxpot/train/config.py)")
    p.add_argument("config", help="YAML or JSON config file")
    p.add_argument("--output", default=None, help="override the config's output folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    p = sub.add_parser("quickstart", help="train PaiNN on the bundled ethanol data, evaluate, write model and plots")
    p.add_argument("--out", default="jaxpot_quickstart", help="output folder (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=60, help="(default: %(default)s)")
    p.add_argument("--features", type=int, default=64, help="PaiNN feature width (default: %(default)s)")
    p.add_argument("--n-train", type=int, default=500, help="training frames (default: %(default)s)")
    p.add_argument("--n-valid", type=int, default=100, help="validation frames (default: %(default)s)")
    p.add_argument("--n-test", type=int, default=400, help="held-out test frames (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_quickstart)

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

    p = sub.add_parser("md", help="molecular dynamics or FIRE relaxation with jax-md, writing extended XYZ")
    p.add_argument("model", help="a saved model directory")
    p.add_argument("structure", help="any file ASE reads, or a molecule name known to ase.build.molecule")
    p.add_argument("--index", default="-1", help="ASE index of the starting frame in the file (default: last)")
    p.add_argument("--ensemble", default="nvt",
                   choices=["nve", "nvt", "nvt_langevin", "nvt_nose_hoover", "npt", "fire"],
                   help="nvt is Langevin (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=300.0, help="K (default: %(default)s)")
    p.add_argument("--timestep", type=float, default=0.5, help="fs (default: %(default)s)")
    p.add_argument("--steps", type=int, default=1000, help="(default: %(default)s)")
    p.add_argument("--write-every", type=int, default=10, help="steps between frames (default: %(default)s)")
    p.add_argument("--friction", type=float, default=0.01, help="Langevin friction in 1/fs (default: %(default)s)")
    p.add_argument("--pressure", type=float, default=0.0, help="NPT pressure in GPa (default: %(default)s)")
    p.add_argument("--fmax", type=float, default=0.05, help="FIRE force threshold in eV/Å (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    p.add_argument("--float64", action="store_true", help="simulate in double precision")
    p.add_argument("--out", default="traj.xyz", help="extended XYZ trajectory (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_md)

    p = sub.add_parser("spectrum", help="harmonic IR/Raman spectrum of a molecule: plot and table of modes")
    from jaxpot.spectra.command import add_arguments as _spectrum_arguments

    _spectrum_arguments(p)
    p.set_defaults(func=_spectrum)

    p = sub.add_parser("export", help="serialize a model's energy/forces/stress as StableHLO (jax.export)")
    p.add_argument("model", help="a saved model directory")
    p.add_argument("out", help="output folder")
    p.add_argument("--max-edges", type=int, default=65536,
                   help="largest edge capacity when edges cannot be symbolic (default: %(default)s)")
    p.add_argument("--platforms", default="cpu,cuda", help="lowering platforms, comma separated (default: %(default)s)")
    p.add_argument("--float64", action="store_true", help="export in double precision")
    p.set_defaults(func=_export)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:
        print(f"jaxpot: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
