"""The same harmonic analysis with a reference method through ASE (tblite GFN2-xTB, PySCF).

Reference codes are driven as ASE calculators (``jaxpot.reference.calculator``), so the
Hessian and dipole derivatives come from central differences of their forces and dipoles:
6N single points with step ``delta`` (Å), the protocol of ``ase.vibrations`` and of ORCA's
NumFreq. The result goes through the same ``analyse`` as a model's, so the two are compared
with identical conventions.
"""

from __future__ import annotations

import numpy as np

from jaxpot.spectra.analysis import HarmonicSpectrum, analyse, relax


def finite_difference_derivatives(atoms, calc, delta: float = 0.005, dipole: bool = True) -> dict[str, np.ndarray]:
    """``{"hessian": [3N, 3N] eV/Å², "dipole_derivatives": [N, 3, 3] e}`` by central differences
    of ``calc``'s forces (and dipoles) at ``atoms`` displaced by ±``delta`` Å per coordinate."""
    if delta <= 0:
        raise ValueError(f"delta must be positive (Å), got {delta}")
    work = atoms.copy()
    work.calc = calc
    n = len(work)
    hessian = np.zeros((3 * n, 3 * n))
    dmu = np.zeros((n, 3, 3))
    base = work.positions.copy()
    for i in range(n):
        for b in range(3):
            forces, dipoles = [], []
            for sign in (1.0, -1.0):
                work.positions = base
                work.positions[i, b] += sign * delta
                forces.append(work.get_forces().reshape(-1))
                if dipole:
                    dipoles.append(work.get_dipole_moment())
            hessian[3 * i + b] = -(forces[0] - forces[1]) / (2 * delta)
            if dipole:
                dmu[i, b] = (dipoles[0] - dipoles[1]) / (2 * delta)
    work.positions = base
    work.calc = None
    out = {"hessian": 0.5 * (hessian + hessian.T)}
    if dipole:
        out["dipole_derivatives"] = dmu
    return out


def reference_spectrum(atoms, method: str = "gfn2-xtb", *, optimize: bool = True, fmax: float = 1e-4,
                       delta: float = 0.005, ir: bool = True, **options) -> tuple[HarmonicSpectrum, object]:
    """``(HarmonicSpectrum, geometry)`` of ``atoms`` with a reference method (a name for
    ``jaxpot.reference.calculator``: "gfn2-xtb", "b3lyp/def2-svp", ...; ``options`` go to it),
    relaxed first with BFGS to ``fmax`` eV/Å unless ``optimize=False``."""
    from jaxpot.reference import calculator

    calc = calculator(method, **options)
    geometry = relax(atoms, calc, fmax=fmax) if optimize else atoms.copy()
    d = finite_difference_derivatives(geometry, calc, delta=delta, dipole=ir)
    spectrum = analyse(d["hessian"], geometry.get_masses(), geometry.positions, d.get("dipole_derivatives"),
                       periodic=bool(np.any(geometry.pbc)))
    return spectrum, geometry


def compare(model: HarmonicSpectrum, reference: HarmonicSpectrum, match: str = "order") -> dict[str, float]:
    """Mode-by-mode comparison of two analyses of the same molecule: RMS and max absolute
    wavenumber deviation (cm⁻¹) and the Pearson correlation of the IR intensities (when both
    have them). ``match="order"`` pairs modes in order of wavenumber; ``"overlap"`` pairs them by
    the largest total overlap ``|L_modelᵀ L_reference|`` of the mass-weighted eigenvectors
    (Hungarian assignment), which follows modes whose order swaps (geometries must be close and
    in the same orientation)."""
    a, b = model.wavenumbers, reference.wavenumbers
    if a.shape != b.shape:
        raise ValueError(f"the two analyses have {a.shape[0]} and {b.shape[0]} modes; are they the same molecule?")
    if match == "order":
        pair = np.arange(a.shape[0])
    elif match == "overlap":
        from scipy.optimize import linear_sum_assignment

        _, pair = linear_sum_assignment(-np.abs(model.modes.mass_weighted.T @ reference.modes.mass_weighted))
    else:
        raise ValueError(f"match must be 'order' or 'overlap', got {match!r}")
    diff = a - b[pair]
    out = {"modes": int(a.shape[0]), "rms_wavenumber": float(np.sqrt(np.mean(diff**2))),
           "max_abs_wavenumber": float(np.max(np.abs(diff)))}
    if model.ir is not None and reference.ir is not None:
        out["ir_correlation"] = float(np.corrcoef(model.ir, reference.ir[pair])[0, 1])
    return out
