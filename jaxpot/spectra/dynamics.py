"""Spectra from dynamics: time autocorrelation functions and their Fourier transforms.

For a stationary signal ``x(t)`` with autocorrelation ``C(t) = <x(0)·x(t)>`` the one-sided
power spectral density per wavenumber is ``S(ν̃) = 2c ∫ C(t) cos(2π c ν̃ t) dt`` (over all t),
normalised so that ``∫_0^∞ S dν̃ = C(0)``. The spectra below are scaled so that, for a harmonic
molecule in classical equilibrium at temperature T (``<Q̇_k²> = kT``), each band integrates to
the double-harmonic value of ``jaxpot.spectra.intensities``:

* IR: ``I(ν̃) = N_A / (12 ε0 c² kT) · ω² S_μ(ν̃)``, km/mol per cm⁻¹
  (``ω² S_μ`` is the spectrum of dμ/dt; e.g. Gaigeot & Sprik, J. Phys. Chem. B 107, 10344
  (2003), Eq. 1 for the condensed-phase form);
* Raman: ``R(ν̃) = ω² / kT · (45 S_ᾱ + 21/2 S_β)``, Å⁴/amu per cm⁻¹, with ᾱ = Tr α / 3 and
  β = α − ᾱ 1 (so that 45 a² + 7 γ² of a mode is recovered: γ² = 3/2 Tr β²), and the
  depolarisation ratio ``ρ(ν̃) = 4.5 S_β / (45 S_ᾱ + 6 S_β)``;
* power spectrum (vibrational density of states): ``D(ν̃) = Σ_i m_i S_{v_i}(ν̃) / kT``, which
  integrates to the number of degrees of freedom.

Quantum correction factors multiply the classical line shape (Ramírez, López-Ciudad, Kumar &
Marx, J. Chem. Phys. 121, 3973 (2004)); relative to the form above, with ``x = ħω / kT``:
``"harmonic"``: 1 (exact for a harmonic system with linear dipole), ``"standard"``:
``2 sinh(x/2) / x``, ``"classical"`` (quantum ACF = classical ACF): ``(1 - e^-x) / x``.
"""

from __future__ import annotations

import numpy as np

from jaxpot.spectra.units import (
    AMU,
    ANGSTROM,
    AVOGADRO,
    BOLTZMANN,
    ELEMENTARY_CHARGE,
    HBAR,
    SPEED_OF_LIGHT,
    VACUUM_PERMITTIVITY,
    wavenumber_to_angular_frequency,
)

CORRECTIONS = ("harmonic", "standard", "classical", "none")
WINDOWS = ("hann", "none")
FS = 1e-15  # s


def autocorrelation(x, max_lag: int | None = None, subtract_mean: bool = True) -> np.ndarray:
    """``C(n) = <x(0)·x(n)>`` [L] of a time series ``x`` [T, ...] (components summed), averaged over
    all time origins (``1 / (T - n)``), by FFT. ``max_lag`` defaults to T // 2."""
    x = np.asarray(x, np.float64)
    if x.ndim == 0 or x.shape[0] < 2:
        raise ValueError(f"need a time series [T, ...] with T >= 2 frames, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("the time series holds NaN or inf")
    t = x.shape[0]
    x = x.reshape(t, -1)
    if subtract_mean:
        x = x - x.mean(axis=0, keepdims=True)
    max_lag = t // 2 if max_lag is None else int(max_lag)
    if not 1 <= max_lag <= t:
        raise ValueError(f"max_lag must be in [1, {t}] for {t} frames, got {max_lag}")
    n = 1 << int(np.ceil(np.log2(2 * t)))
    f = np.fft.rfft(x, n=n, axis=0)
    acf = np.fft.irfft(np.sum(np.abs(f) ** 2, axis=1), n=n)[:max_lag]
    return acf / (t - np.arange(max_lag))


def power_spectral_density(acf, timestep: float, grid, window: str = "hann") -> np.ndarray:
    """``S(ν̃)`` [G] per cm⁻¹ on ``grid`` (cm⁻¹) from an autocorrelation ``acf`` [L] sampled every
    ``timestep`` fs; ``∫_0^ν̃max S dν̃ = C(0)`` for the Nyquist range. ``window`` "hann" damps the
    noisy tail (resolution about 2 / (L·dt·c))."""
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r}; choose one of {WINDOWS}")
    if timestep <= 0:
        raise ValueError(f"timestep must be positive (fs), got {timestep}")
    c = np.asarray(acf, np.float64).reshape(-1)
    lags = np.arange(c.shape[0])
    w = 0.5 * (1.0 + np.cos(np.pi * lags / c.shape[0])) if window == "hann" else np.ones_like(c)
    weights = 2.0 * w * c
    weights[0] = c[0]
    dt = timestep * FS
    omega = wavenumber_to_angular_frequency(np.asarray(grid, np.float64))
    transform = dt * (np.cos(np.outer(omega, lags * dt)) @ weights)  # Ĉ(ω), per rad/s
    return 2.0 * SPEED_OF_LIGHT * 100.0 * transform


def quantum_correction(grid, temperature: float, kind: str = "harmonic") -> np.ndarray:
    """[G] factor multiplying the classical ``ω² S(ν̃) / kT`` line shape (see module docstring)."""
    if kind not in CORRECTIONS:
        raise ValueError(f"unknown quantum correction {kind!r}; choose one of {CORRECTIONS}")
    grid = np.asarray(grid, np.float64)
    if kind in ("harmonic", "none"):
        return np.ones_like(grid)
    x = HBAR * wavenumber_to_angular_frequency(np.abs(grid)) / (BOLTZMANN * temperature)
    x_safe = np.where(x > 1e-12, x, 1.0)
    if kind == "standard":
        return np.where(x > 1e-12, 2.0 * np.sinh(0.5 * x_safe) / x_safe, 1.0)
    return np.where(x > 1e-12, -np.expm1(-x_safe) / x_safe, 1.0)


def _check_temperature(temperature: float) -> float:
    if not temperature > 0:
        raise ValueError(f"temperature must be positive (K), got {temperature}")
    return float(temperature)


def _grid(grid, timestep: float) -> np.ndarray:
    if grid is None:
        nyquist = 1.0 / (2.0 * timestep * FS * SPEED_OF_LIGHT * 100.0)
        return np.arange(0.0, min(4000.0, nyquist), 1.0)
    return np.asarray(grid, np.float64)


def ir_spectrum(dipoles, timestep: float, temperature: float, grid=None, max_lag: int | None = None,
                window: str = "hann", correction: str = "harmonic") -> tuple[np.ndarray, np.ndarray]:
    """``(grid [G] cm⁻¹, IR absorption [G] km/mol per cm⁻¹)`` from dipoles [T, 3] e·Å sampled every
    ``timestep`` fs of an equilibrium trajectory at ``temperature`` K."""
    temperature = _check_temperature(temperature)
    mu = np.asarray(dipoles, np.float64)
    if mu.ndim != 2 or mu.shape[1] != 3:
        raise ValueError(f"dipoles must be [T, 3] e·Å, got shape {mu.shape}")
    grid = _grid(grid, timestep)
    s = power_spectral_density(autocorrelation(mu, max_lag), timestep, grid, window)  # (e·Å)² per cm⁻¹
    omega = wavenumber_to_angular_frequency(grid)
    si = (ELEMENTARY_CHARGE * ANGSTROM) ** 2 * omega**2 * s / (BOLTZMANN * temperature)  # C²/kg per cm⁻¹
    absorption = AVOGADRO / (12.0 * VACUUM_PERMITTIVITY * SPEED_OF_LIGHT**2) * si / 1e3
    return grid, absorption * quantum_correction(grid, temperature, correction)


def raman_spectrum(polarizabilities, timestep: float, temperature: float, grid=None, max_lag: int | None = None,
                   window: str = "hann", correction: str = "harmonic") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(grid [G] cm⁻¹, Raman activity [G] Å⁴/amu per cm⁻¹, depolarisation ratio [G])`` from
    polarizabilities [T, 3, 3] Å³ sampled every ``timestep`` fs at ``temperature`` K."""
    temperature = _check_temperature(temperature)
    alpha = np.asarray(polarizabilities, np.float64)
    if alpha.ndim != 3 or alpha.shape[1:] != (3, 3):
        raise ValueError(f"polarizabilities must be [T, 3, 3] Å³, got shape {alpha.shape}")
    alpha = 0.5 * (alpha + np.swapaxes(alpha, 1, 2))
    mean = np.trace(alpha, axis1=1, axis2=2) / 3.0
    aniso = alpha - mean[:, None, None] * np.eye(3)
    grid = _grid(grid, timestep)
    s_iso = power_spectral_density(autocorrelation(mean[:, None], max_lag), timestep, grid, window)
    s_aniso = power_spectral_density(autocorrelation(aniso, max_lag), timestep, grid, window)
    omega = wavenumber_to_angular_frequency(grid)
    to_a4_per_amu = omega**2 / (BOLTZMANN * temperature) * ANGSTROM**2 * AMU  # Å⁶ -> Å⁴/amu
    activity = to_a4_per_amu * (45.0 * s_iso + 10.5 * s_aniso) * quantum_correction(grid, temperature, correction)
    den = 45.0 * s_iso + 6.0 * s_aniso
    tiny = 1e-12 * max(float(np.max(np.abs(den), initial=0.0)), 1e-300)
    depol = np.where(np.abs(den) > tiny, 4.5 * s_aniso / np.where(np.abs(den) > tiny, den, 1.0), 0.0)
    return grid, activity, depol


def power_spectrum(velocities, masses, timestep: float, temperature: float, grid=None, max_lag: int | None = None,
                   window: str = "hann") -> tuple[np.ndarray, np.ndarray]:
    """``(grid [G] cm⁻¹, vibrational density of states [G] per cm⁻¹)`` from velocities [T, N, 3]
    Å/fs and masses [N] amu at ``temperature`` K; integrates to the degrees of freedom (3N)."""
    temperature = _check_temperature(temperature)
    v = np.asarray(velocities, np.float64)
    m = np.asarray(masses, np.float64).reshape(-1)
    if v.ndim != 3 or v.shape[2] != 3 or v.shape[1] != m.shape[0]:
        raise ValueError(f"velocities must be [T, N, 3] Å/fs with N = {m.shape[0]} masses, got shape {v.shape}")
    grid = _grid(grid, timestep)
    weighted = v * np.sqrt(m)[None, :, None]
    s = power_spectral_density(autocorrelation(weighted, max_lag, subtract_mean=False), timestep, grid, window)
    to_joule = AMU * (ANGSTROM / FS) ** 2  # amu Å²/fs² -> J
    return grid, s * to_joule / (BOLTZMANN * temperature)


def trajectory_arrays(frames) -> dict[str, np.ndarray]:
    """From ``jaxpot.md.simulate`` frames (or any ASE frames with momenta and ``info["time"]``):
    ``timestep`` (fs between frames), ``velocities`` [T, N, 3] Å/fs, ``masses`` [N] amu and, where
    every frame has them, ``dipoles`` [T, 3] e·Å and ``polarizabilities`` [T, 3, 3] Å³."""
    from ase import units

    frames = list(frames)
    if len(frames) < 2:
        raise ValueError(f"need at least two frames, got {len(frames)}")
    times = np.array([f.info.get("time", np.nan) for f in frames], np.float64)
    steps = np.diff(times)
    if not np.all(np.isfinite(steps)) or not np.allclose(steps, steps[0], rtol=1e-6) or steps[0] <= 0:
        raise ValueError("frames need evenly spaced info['time'] (fs), as jaxpot.md.simulate writes")
    out = {
        "timestep": float(steps[0]),
        "velocities": np.stack([f.get_velocities() for f in frames]) * units.fs,
        "masses": frames[0].get_masses(),
    }
    for key, name, shape in (("dipole", "dipoles", (3,)), ("polarizability", "polarizabilities", (3, 3))):
        if all(key in f.info for f in frames):
            out[name] = np.stack([np.asarray(f.info[key], np.float64).reshape(shape) for f in frames])
    return out


def tensors_along(potential, frames, dipole: bool = True, polarizability: bool = True) -> dict[str, np.ndarray]:
    """A model's ``dipoles`` [T, 3] e·Å and ``polarizabilities`` [T, 3, 3] Å³ along ``frames``
    (``Potential.calculate`` per frame; one compilation per shape bucket). Raises ValueError
    when the potential lacks an asked-for head."""
    frames = list(frames)
    wanted = [k for k, on in (("dipole", dipole), ("polarizability", polarizability)) if on]
    for key in wanted:
        getattr(potential, f"{key}_fn")()  # a ValueError that says how to get the head
    results = [potential.calculate(f) for f in frames]
    names = {"dipole": "dipoles", "polarizability": "polarizabilities"}
    return {names[k]: np.stack([np.asarray(r[k], np.float64) for r in results]) for k in wanted}
