"""Spectrum plots (PNG): broadened IR and Raman with sticks, optionally beside a reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxpot.spectra.analysis import HarmonicSpectrum
from jaxpot.spectra.broadening import broaden, default_grid


def plot_spectra(spectra: dict[str, HarmonicSpectrum], path, *, ir: bool = True, raman: bool = False,
                 fwhm: float = 10.0, shape: str = "lorentzian", title: str | None = None) -> Path:
    """One panel per kind (IR km/mol, Raman Å⁴/amu), each spectrum in ``spectra`` ({label: spectrum})
    broadened with ``fwhm`` cm⁻¹ lines, with its sticks; writes ``path`` and returns it."""
    from jaxpot.train.plots import _pyplot

    kinds = [k for k, on in (("ir", ir), ("raman", raman)) if on]
    if not kinds:
        raise ValueError("nothing to plot: ask for ir and/or raman")
    for kind in kinds:
        missing = [label for label, s in spectra.items() if getattr(s, kind) is None]
        if missing:
            raise ValueError(f"{', '.join(missing)} has no {kind} intensities")
    plt = _pyplot()
    top = max(float(np.max(s.wavenumbers, initial=0.0)) for s in spectra.values())
    grid = default_grid(stop=max(500.0, 1.1 * top + 3 * fwhm), step=min(1.0, fwhm / 5))
    fig, axes = plt.subplots(len(kinds), 1, figsize=(9, 3.2 * len(kinds)), squeeze=False)
    units = {"ir": "IR (km/mol per cm$^{-1}$)", "raman": "Raman activity (Å$^4$/amu per cm$^{-1}$)"}
    for ax, kind in zip(axes[:, 0], kinds):
        for n, (label, s) in enumerate(spectra.items()):
            values = getattr(s, kind)
            _, curve = broaden(s.wavenumbers, values, grid, fwhm, shape)
            (line,) = ax.plot(grid, curve, label=label, lw=1.4)
            scale = curve.max() / max(values.max(), 1e-300) if curve.max() > 0 else 1.0
            ax.vlines(s.wavenumbers[s.wavenumbers > 0], 0, scale * values[s.wavenumbers > 0],
                      color=line.get_color(), lw=0.8, alpha=0.6)
        ax.set_ylabel(units[kind])
        ax.set_xlim(grid[0], grid[-1])
        ax.legend()
    axes[-1, 0].set_xlabel("wavenumber (cm$^{-1}$)")
    if title:
        axes[0, 0].set_title(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
