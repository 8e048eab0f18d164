"""IR intensities and Raman activities of normal modes from Cartesian derivatives.

With ``L`` the orthonormal mass-weighted modes [3N, M] (``jaxpot.spectra.harmonic``), the
derivative of any property ``X`` along normal coordinate ``Q_k`` is
``dX/dQ_k = Σ_i (dX/dx_i) L_ik / sqrt(m_i)``.

* IR (double-harmonic approximation; Wilson, Decius & Cross, Eq. 7-9; the km/mol value ORCA,
  Gaussian and ASE report): ``A_k = N_A / (12 ε0 c²) |dμ/dQ_k|²``, 974.88 km/mol per e²/amu.
* Raman (Long, "The Raman Effect", Sec. 5.5; Gaussian/ORCA "activity"): with
  ``a_k = Tr(dα/dQ_k) / 3`` and the anisotropy
  ``γ_k² = ½[(α'xx-α'yy)² + (α'yy-α'zz)² + (α'zz-α'xx)² + 6(α'xy² + α'yz² + α'xz²)]``,
  the activity is ``S_k = 45 a_k² + 7 γ_k²`` in Å⁴/amu and the depolarisation ratio for
  plane-polarised light ``ρ_k = 3 γ_k² / (45 a_k² + 4 γ_k²)`` (natural light:
  ``6 γ_k² / (45 a_k² + 7 γ_k²)``).

Derivative layouts: dipole derivatives [3N, 3] or [N, 3, 3] in e (e·Å/Å), index
``[3 i + b, a] = dμ_a / dx_ib``; polarizability derivatives [3N, 3, 3] or [N, 3, 3, 3] in Å²
(Å³/Å), ``[3 i + b, a, c] = dα_ac / dx_ib``.
"""

from __future__ import annotations

import numpy as np

from jaxpot.spectra.harmonic import NormalModes
from jaxpot.spectra.units import BOLTZMANN, HBAR, KM_PER_MOL_PER_E2_AMU, SPEED_OF_LIGHT


def _cartesian_rows(derivatives, n_atoms: int, tail: tuple[int, ...], what: str) -> np.ndarray:
    d = np.asarray(derivatives, dtype=np.float64)
    if d.shape == (n_atoms, 3) + tail:
        d = d.reshape((3 * n_atoms,) + tail)
    if d.shape != (3 * n_atoms,) + tail:
        raise ValueError(
            f"{what} derivatives must be [3N, {', '.join(map(str, tail))}] or [N, 3, {', '.join(map(str, tail))}] "
            f"with N = {n_atoms}, got shape {np.shape(derivatives)}"
        )
    if not np.all(np.isfinite(d)):
        raise ValueError(f"{what} derivatives hold NaN or inf")
    return d


def normal_mode_derivatives(cartesian_derivatives: np.ndarray, modes: NormalModes) -> np.ndarray:
    """``dX/dQ_k`` [M, ...] from Cartesian ``dX/dx`` [3N, ...] (per amu^1/2)."""
    inv_sqrt_m = 1.0 / np.sqrt(np.repeat(modes.masses, 3))
    cartesian_displacements = modes.mass_weighted * inv_sqrt_m[:, None]  # [3N, M]
    return np.tensordot(cartesian_displacements.T, cartesian_derivatives, axes=1)


def ir_intensities(dipole_derivatives, modes: NormalModes) -> np.ndarray:
    """[M] IR intensities in km/mol from dipole derivatives ([3N, 3] or [N, 3, 3], e)."""
    d = _cartesian_rows(dipole_derivatives, len(modes.masses), (3,), "dipole")
    dmu_dq = normal_mode_derivatives(d, modes)  # [M, 3] e/amu^1/2
    return KM_PER_MOL_PER_E2_AMU * np.sum(dmu_dq**2, axis=-1)


def raman_invariants(polarizability_derivatives, modes: NormalModes) -> tuple[np.ndarray, np.ndarray]:
    """``(a_k² , γ_k²)`` [M] each, in Å⁴/amu: the squared mean and anisotropy of ``dα/dQ_k``."""
    d = _cartesian_rows(polarizability_derivatives, len(modes.masses), (3, 3), "polarizability")
    da = normal_mode_derivatives(d, modes)  # [M, 3, 3] Å²/amu^1/2
    da = 0.5 * (da + np.swapaxes(da, -1, -2))
    mean = np.trace(da, axis1=-2, axis2=-1) / 3.0
    xx, yy, zz = da[:, 0, 0], da[:, 1, 1], da[:, 2, 2]
    off = da[:, 0, 1] ** 2 + da[:, 1, 2] ** 2 + da[:, 0, 2] ** 2
    gamma2 = 0.5 * ((xx - yy) ** 2 + (yy - zz) ** 2 + (zz - xx) ** 2 + 6.0 * off)
    return mean**2, gamma2


def raman_activities(polarizability_derivatives, modes: NormalModes, natural_light: bool = False):
    """``(activities [M] Å⁴/amu, depolarisation ratios [M])`` from polarizability derivatives
    ([3N, 3, 3] or [N, 3, 3, 3], Å²). Depolarisation for plane-polarised incident light unless
    ``natural_light``; modes without Raman activity get ratio 0."""
    a2, g2 = raman_invariants(polarizability_derivatives, modes)
    activity = 45.0 * a2 + 7.0 * g2
    num, den = (6.0 * g2, 45.0 * a2 + 7.0 * g2) if natural_light else (3.0 * g2, 45.0 * a2 + 4.0 * g2)
    tiny = 1e-12 * max(float(np.max(den, initial=0.0)), 1e-300)
    ratio = np.where(den > tiny, num / np.where(den > tiny, den, 1.0), 0.0)
    return activity, ratio


def raman_intensities(activities, wavenumbers, laser_wavenumber: float = 18796.99, temperature: float = 298.15):
    """[M] relative Raman scattering intensities from activities (Stokes lines):
    ``I_k ∝ (ν̃0 - ν̃k)⁴ S_k / (ν̃k (1 - exp(-h c ν̃k / kT)))`` (Polavarapu, J. Phys. Chem. 94,
    8106 (1990), Eq. 2), normalised to a maximum of 1. ``laser_wavenumber`` in cm⁻¹
    (default 532 nm), ``temperature`` in K. Modes at or below 1 cm⁻¹ get 0."""
    s = np.asarray(activities, np.float64)
    nu = np.asarray(wavenumbers, np.float64)
    if laser_wavenumber <= np.max(nu, initial=0.0):
        raise ValueError(f"the laser wavenumber {laser_wavenumber} cm⁻¹ must exceed every mode's wavenumber")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive (K), got {temperature}")
    ok = nu > 1.0
    nu_safe = np.where(ok, nu, 1.0)
    x = 2.0 * np.pi * HBAR * SPEED_OF_LIGHT * 100.0 * nu_safe / (BOLTZMANN * temperature)
    i = np.where(ok, (laser_wavenumber - nu) ** 4 * s / (nu_safe * -np.expm1(-x)), 0.0)
    top = np.max(i, initial=0.0)
    return i / top if top > 0 else i
