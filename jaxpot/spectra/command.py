"""``jaxpot spectrum MODEL MOLECULE --ir --raman --out spectrum.png``: relax, harmonic analysis,
plot and table, optionally beside a reference method's analysis of its own minimum."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a saved model directory")
    p.add_argument("structure", help="any file ASE reads, or a molecule name known to ase.build.molecule")
    p.add_argument("--index", default="-1", help="ASE index of the frame in the file (default: last)")
    p.add_argument("--ir", action="store_true", help="IR intensities (needs a dipole head; the default)")
    p.add_argument("--raman", action="store_true", help="Raman activities (needs a polarizability head)")
    p.add_argument("--no-relax", action="store_true", help="analyse the geometry as given (default: BFGS first)")
    p.add_argument("--fmax", type=float, default=1e-4, help="relaxation force threshold, eV/Å (default: %(default)s)")
    p.add_argument("--fwhm", type=float, default=10.0, help="line width in cm^-1 (default: %(default)s)")
    p.add_argument("--shape", default="lorentzian", choices=["lorentzian", "gaussian"], help="(default: %(default)s)")
    p.add_argument("--chunk-size", type=int, default=None,
                   help="Hessian columns per batch of HVPs (bounds memory for large systems; default: all)")
    p.add_argument("--reference", default=None,
                   help="also analyse with a reference method at its own minimum (gfn2-xtb, b3lyp/def2-svp, ...)")
    p.add_argument("--out", default="spectrum.png", help="plot (default: %(default)s)")
    p.add_argument("--table", default=None, help="table of modes (default: the plot's name with .txt)")


def run(args) -> int:
    import jaxpot
    from jaxpot.calculator import Calculator
    from jaxpot.cli import _read_structure
    from jaxpot.spectra.analysis import harmonic_spectrum, relax
    from jaxpot.spectra.plot import plot_spectra

    ir = args.ir or not args.raman
    pot = jaxpot.load(args.model)
    atoms = _read_structure(args.structure, args.index)
    if len(atoms) < 2:
        raise ValueError("a harmonic analysis needs at least two atoms")
    # Fail before relaxing when a head is missing (the message says how to get one).
    pot64 = pot.astype("float64")
    if ir:
        pot64.dipole_fn()
    if args.raman:
        pot64.polarizability_fn()
    t0 = time.perf_counter()
    geometry = atoms if args.no_relax else relax(atoms, Calculator(pot64), fmax=args.fmax)
    t1 = time.perf_counter()
    spectrum = harmonic_spectrum(pot64, geometry, ir=ir, raman=args.raman, chunk_size=args.chunk_size)
    t2 = time.perf_counter()
    spectra = {f"jaxpot ({pot.model})": spectrum}
    summary = {"atoms": len(geometry), "modes": len(spectrum.modes), "imaginary": int(np.sum(spectrum.wavenumbers < 0)),
               "relax_seconds": round(t1 - t0, 2), "analysis_seconds": round(t2 - t1, 2)}
    text = [f"# jaxpot spectrum: {args.model} on {args.structure}", spectrum.table()]
    if args.reference:
        from jaxpot.spectra.reference import compare, reference_spectrum

        t3 = time.perf_counter()
        ref, _ = reference_spectrum(atoms, args.reference, ir=ir)
        summary["reference_seconds"] = round(time.perf_counter() - t3, 2)
        spectra[args.reference] = ref
        summary["comparison"] = compare(spectrum, ref)
        text += [f"# reference: {args.reference} at its own minimum", ref.table()]
    out = plot_spectra(spectra, args.out, ir=ir, raman=args.raman and not args.reference, fwhm=args.fwhm,
                       shape=args.shape, title=f"{args.structure}: harmonic spectrum")
    table = Path(args.table) if args.table else out.with_suffix(".txt")
    table.write_text("\n".join(text) + "\n")
    print("\n".join(text))
    print(json.dumps({"plot": str(out), "table": str(table), **summary}))
    return 0
