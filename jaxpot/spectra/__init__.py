"""Vibrational spectra: harmonic analysis, IR and Raman intensities, spectra from dynamics.

* ``harmonic``: mass weighting, translation/rotation projection, wavenumbers (cm⁻¹), modes.
* ``intensities``: IR intensities (km/mol), Raman activities (Å⁴/amu), depolarisation ratios.
* ``broadening``: Lorentzian/Gaussian line shapes.
* ``analysis``: Hessian and dipole/polarizability derivatives of a Potential (float64 JAX
  transforms) -> ``HarmonicSpectrum``.
* ``dynamics``: autocorrelation spectra from MD (IR, Raman, power spectrum), quantum corrections.
* ``reference``: the same analysis with tblite/PySCF through ASE, and a model-vs-reference comparison.
* ``plot``: PNG spectra.
"""

from jaxpot.spectra.analysis import HarmonicSpectrum, analyse, derivatives, harmonic_spectrum, relax, tensor_derivatives
from jaxpot.spectra.broadening import broaden
from jaxpot.spectra.dynamics import (
    autocorrelation,
    ir_spectrum,
    power_spectrum,
    raman_spectrum,
    tensors_along,
    trajectory_arrays,
)
from jaxpot.spectra.harmonic import NormalModes, harmonic_analysis, projected_wavenumbers, rigid_body_basis
from jaxpot.spectra.intensities import ir_intensities, raman_activities, raman_intensities
from jaxpot.spectra.reference import compare, finite_difference_derivatives, reference_spectrum

__all__ = [
    "HarmonicSpectrum", "NormalModes", "analyse", "autocorrelation", "broaden", "compare", "derivatives",
    "finite_difference_derivatives", "harmonic_analysis", "harmonic_spectrum", "ir_intensities", "ir_spectrum",
    "power_spectrum", "projected_wavenumbers", "raman_activities", "raman_intensities", "raman_spectrum",
    "reference_spectrum", "relax", "rigid_body_basis", "tensor_derivatives", "tensors_along", "trajectory_arrays",
]
