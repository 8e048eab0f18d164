"""Line shapes: stick spectra (wavenumbers, intensities) -> a continuous spectrum on a grid.

Each line is an area-normalised Lorentzian or Gaussian of full width at half maximum ``fwhm``
(cm⁻¹), so a band integrates to its stick intensity: km/mol sticks give km/mol per cm⁻¹,
directly comparable with ``jaxpot.spectra.dynamics.ir_spectrum``.
"""

from __future__ import annotations

import numpy as np

LINE_SHAPES = ("lorentzian", "gaussian")


def lorentzian(x, center, fwhm):
    """Area-normalised Lorentzian ``(Γ/2π) / ((x - x0)² + (Γ/2)²)``."""
    half = 0.5 * fwhm
    return (half / np.pi) / ((x - center) ** 2 + half**2)


def gaussian(x, center, fwhm):
    """Area-normalised Gaussian with ``σ = Γ / (2 sqrt(2 ln 2))``."""
    sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    return np.exp(-0.5 * ((x - center) / sigma) ** 2) / (sigma * np.sqrt(2.0 * np.pi))


def default_grid(wavenumbers=None, start: float = 0.0, stop: float | None = None, step: float = 1.0) -> np.ndarray:
    """A wavenumber grid (cm⁻¹) from ``start`` to ``stop`` (default: 10% past the highest line, at
    least 4000) in steps of ``step``."""
    if stop is None:
        top = float(np.max(wavenumbers, initial=0.0)) if wavenumbers is not None else 0.0
        stop = max(4000.0, 1.1 * top)
    return np.arange(start, stop + 0.5 * step, step)


def broaden(wavenumbers, intensities, grid=None, fwhm: float = 10.0, shape: str = "lorentzian") -> tuple[np.ndarray, np.ndarray]:
    """``(grid [G] cm⁻¹, spectrum [G])``: the sum of line shapes at ``wavenumbers`` [M] with areas
    ``intensities`` [M]. Imaginary modes (negative wavenumbers) are left out."""
    if shape not in LINE_SHAPES:
        raise ValueError(f"unknown line shape {shape!r}; choose one of {LINE_SHAPES}")
    if fwhm <= 0:
        raise ValueError(f"fwhm must be positive (cm⁻¹), got {fwhm}")
    nu = np.asarray(wavenumbers, np.float64).reshape(-1)
    a = np.asarray(intensities, np.float64).reshape(-1)
    if nu.shape != a.shape:
        raise ValueError(f"need one intensity per wavenumber, got {a.shape[0]} and {nu.shape[0]}")
    grid = default_grid(nu) if grid is None else np.asarray(grid, np.float64)
    keep = nu > 0
    line = lorentzian if shape == "lorentzian" else gaussian
    spectrum = line(grid[:, None], nu[keep][None, :], fwhm) @ a[keep]
    return grid, spectrum
