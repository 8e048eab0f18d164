"""Harmonic IR of ethanol: a PaiNN trained on GFN2-xTB labels against GFN2-xTB itself, and the
time of the full IR analysis (Hessian + dipole derivatives) with jaxpot, tblite and PySCF.

    nice -n 10 .venv/bin/python benchmarks/spectra.py --model /tmp/helpers/painn_ethanol_dipole
    nice -n 10 .venv/bin/python benchmarks/spectra.py --epochs 60 --n-train 800   # trains one first

Protocol (one command, one machine):

1. Model: a saved PaiNN with a dipole head (``--model``), or one trained here on the bundled
   GFN2-xTB ethanol set (energies, forces, dipoles; ``jaxpot.reference.bundled_path``).
2. Reference: ethanol (``ase.build.molecule("CH3CH2OH")``) relaxed with GFN2-xTB (tblite,
   BFGS to 1e-4 eV/Å); Hessian and dipole derivatives by central differences of tblite's
   forces and dipoles (6N = 54 single points, 0.005 Å), the same analysis code.
3. Model at the same reference minimum (the comparison the issue asks for; DESIGN-wise the
   model's own minimum is reported too, relaxed from the reference minimum with the model).
   Modes are paired by eigenvector overlap; RMS |Δν̃| (cm⁻¹) and the Pearson correlation of
   the IR intensities (km/mol).
4. Timing of the full IR analysis at the reference minimum (no relaxation in any timing):
   jaxpot: Hessian + dipole derivatives (one compiled forward-mode sweep, float64) + analysis,
   median of warm calls, and the first (compiling) call separately; tblite: the 54 single
   points + analysis; PySCF B3LYP/def2-SVP: the same 54 finite-difference single points
   (energy + gradient + dipole), measured on ``--pyscf-points`` of them and extrapolated to 54
   (``--pyscf-points 54`` runs them all).

Writes ``OUT/spectra.json`` and ``OUT/ethanol_ir.png``.

Measured (2026-11-21, the shared 2-core development machine; the run overlapped a test run,
so its times are rough)::

    nice -n 10 .venv/bin/python benchmarks/spectra.py --epochs 200 --n-train 1350 --features 64 \
        --normal-mode-frames 600 --pyscf-points 2 --out /tmp/spec4

PaiNN (64 features, 3 interactions, dipole head) trained 200 epochs on 1350 of the 1600 frames (the 1000
bundled MD frames + 600 normal-mode frames; validation on 50 of the rest: forces 10.3 meV/Å, energy 0.17 meV/atom,
dipole 0.0033 e·Å). At the GFN2-xTB minimum: RMS |Δν̃| 6.7 cm⁻¹ (max 18.2; target < 10: met),
IR intensity correlation 0.997 (target > 0.9: met). At the model's own minimum (0.0002 Å RMSD
away): 7.6 cm⁻¹, 0.997. Full IR analysis: jaxpot 0.046 s (warm; first call 3.6 s with
compilation), tblite 0.154 s (ratio 3.3), PySCF B3LYP/def2-SVP 7.2 s per single point x 54 =
387 s extrapolated from 2 points (ratio 8.4e3, 10^3.92).

The same protocol with less data and training (``--epochs 80 --n-train 900
--normal-mode-frames 200``) gave 14.4 cm⁻¹ (forces 42.7 meV/Å), and ``--epochs 250 --n-train 900
--normal-mode-frames 400`` gave 11.3 cm⁻¹ (forces 18.1 meV/Å): the frequency error follows the
force error near the minimum.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def training_data(out: Path, normal_mode_frames: int) -> tuple[Path, int]:
    """The bundled GFN2-xTB ethanol MD set (500 K), plus ``normal_mode_frames`` tblite-labelled
    normal-mode samples around the GFN2-xTB minimum (half at 300 K, half at 600 K) when asked."""
    import ase.io
    from ase.build import molecule

    from jaxpot import reference

    bundled = reference.bundled_path("ethanol")
    if normal_mode_frames <= 0:
        return bundled, len(ase.io.read(bundled, index=":"))
    calc = reference.calculator("gfn2-xtb")
    extra = []
    for temperature, seed in ((300.0, 0), (600.0, 1)):
        extra += reference.sample_normal_modes(molecule("CH3CH2OH"), calc, temperature, normal_mode_frames // 2,
                                               seed=seed)
    extra = reference.label(extra, calc, progress=False)
    frames = ase.io.read(bundled, index=":") + extra
    rng = np.random.default_rng(0)
    frames = [frames[i] for i in rng.permutation(len(frames))]
    return reference.write_frames(out / "ethanol_train.xyz", frames), len(frames)


def train_model(out: Path, epochs: int, n_train: int, features: int, dipole_weight: float,
                normal_mode_frames: int) -> Path:
    from jaxpot.train.config import config_from_dict
    from jaxpot.train.run import run

    data, n_frames = training_data(out, normal_mode_frames)
    n_train = min(n_train, n_frames - 50)
    config = config_from_dict({
        "model": {"name": "painn", "cutoff": 5.0, "hparams": {"features": features, "num_interactions": 3},
                  "properties": ["dipole"]},
        "data": {"train": str(data), "n_train": n_train, "n_valid": 50, "n_test": 0,
                 "batch_size": 10, "seed": 0},
        "training": {"epochs": epochs, "learning_rate": 5e-3, "schedule": "cosine", "warmup_steps": 20,
                     "weights": {"energy": 1.0, "forces": 100.0, "dipole": dipole_weight},
                     "swa_weights": {"energy": 1000.0, "forces": 100.0, "dipole": dipole_weight}, "swa_start": 0.75,
                     "checkpoint_every": 1000, "progress": False},
        "output": str(out / "train"),
    })
    summary = run(config)
    print(json.dumps({"trained": summary.get("valid", {}), "model": summary["model"]}), flush=True)
    return Path(summary["model"])


def pyscf_timing(geometry, points: int, method: str) -> dict:
    """Seconds for ``points`` of the 6N central-difference single points with PySCF (energy,
    gradient, dipole), and the extrapolation to all 6N."""
    from jaxpot.reference import calculator

    n = len(geometry)
    order = [(i, b, s) for i in range(n) for b in range(3) for s in (1.0, -1.0)]
    picks = order[:: max(1, len(order) // points)][:points]
    times = []
    for i, b, s in picks:
        work = geometry.copy()
        work.positions[i, b] += s * 0.005
        work.calc = calculator(method)
        t0 = time.perf_counter()
        work.get_forces()
        work.get_dipole_moment()
        times.append(time.perf_counter() - t0)
    return {"method": method, "points_measured": len(times), "seconds_per_point": float(np.mean(times)),
            "seconds_full_ir": float(np.mean(times) * 6 * n), "extrapolated": len(times) < 6 * n}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="saved PaiNN with a dipole head (else train one)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--n-train", type=int, default=800)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--dipole-weight", type=float, default=10.0)
    p.add_argument("--normal-mode-frames", type=int, default=0,
                   help="add this many tblite-labelled normal-mode samples (300 K / 600 K) to the bundled MD set")
    p.add_argument("--pyscf-points", type=int, default=2, help="PySCF single points to time (0: skip PySCF)")
    p.add_argument("--pyscf-method", default="b3lyp/def2-svp")
    p.add_argument("--repeats", type=int, default=5, help="warm jaxpot analyses to time")
    p.add_argument("--out", default="spectra_benchmark")
    args = p.parse_args()

    from ase.build import molecule

    import jaxpot
    from jaxpot.calculator import Calculator
    from jaxpot.reference import calculator
    from jaxpot.spectra import analyse, compare, finite_difference_derivatives, harmonic_spectrum, relax
    from jaxpot.spectra.plot import plot_spectra

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_path = Path(args.model) if args.model else train_model(out, args.epochs, args.n_train, args.features,
                                                                  args.dipole_weight, args.normal_mode_frames)
    pot = jaxpot.load(model_path)
    result: dict = {"model": str(model_path), "model_name": pot.model, "hparams": pot.hparams,
                    "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()}}

    # Reference: GFN2-xTB minimum and finite-difference IR analysis.
    xtb = calculator("gfn2-xtb")
    t0 = time.perf_counter()
    minimum = relax(molecule("CH3CH2OH"), xtb, fmax=1e-4)
    result["tblite_relax_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    d = finite_difference_derivatives(minimum, xtb, delta=0.005)
    reference = analyse(d["hessian"], minimum.get_masses(), minimum.positions, d["dipole_derivatives"])
    result["tblite_ir_seconds"] = time.perf_counter() - t0

    # The model at the reference minimum: first call compiles, then warm calls.
    pot64 = pot.astype("float64")
    t0 = time.perf_counter()
    model = harmonic_spectrum(pot64, minimum, ir=True)
    result["jaxpot_first_call_seconds"] = time.perf_counter() - t0
    warm = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        harmonic_spectrum(pot64, minimum, ir=True)
        warm.append(time.perf_counter() - t0)
    result["jaxpot_ir_seconds"] = float(np.median(warm))
    result["at_reference_minimum"] = {m: compare(model, reference, match=m) for m in ("overlap", "order")}

    # The model at its own minimum (relaxed from the reference one).
    try:
        own = relax(minimum, Calculator(pot64), fmax=1e-4, steps=500)
        own_spectrum = harmonic_spectrum(pot64, own, ir=True)
        result["at_own_minimum"] = compare(own_spectrum, reference, match="overlap")
        result["own_minimum_rmsd_angstrom"] = float(np.sqrt(np.mean(np.sum((own.positions - minimum.positions) ** 2, 1))))
    except RuntimeError as err:  # a model whose minimum BFGS does not reach
        result["at_own_minimum"] = {"failed": str(err)}
    result["modes"] = {"tblite_cm-1": reference.wavenumbers.round(2).tolist(), "tblite_km_mol": reference.ir.round(3).tolist(),
                       "jaxpot_cm-1": model.wavenumbers.round(2).tolist(), "jaxpot_km_mol": model.ir.round(3).tolist()}

    if args.pyscf_points > 0:
        try:
            result["pyscf"] = pyscf_timing(minimum, args.pyscf_points, args.pyscf_method)
        except ImportError as err:
            result["pyscf"] = {"skipped": str(err)}
    ratios = {"tblite_over_jaxpot": result["tblite_ir_seconds"] / result["jaxpot_ir_seconds"]}
    if "seconds_full_ir" in result.get("pyscf", {}):
        ratios["pyscf_over_jaxpot"] = result["pyscf"]["seconds_full_ir"] / result["jaxpot_ir_seconds"]
        ratios["pyscf_over_jaxpot_log10"] = float(np.log10(ratios["pyscf_over_jaxpot"]))
    result["ratios"] = ratios
    result["machine"]["load_average_end"] = os.getloadavg()

    plot_spectra({f"jaxpot {pot.model} (GFN2-xTB minimum)": model, "GFN2-xTB (tblite)": reference},
                 out / "ethanol_ir.png", ir=True, title="ethanol, harmonic IR")
    (out / "spectra.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
