"""Physical constants (CODATA 2018, SI) and the unit conversions of the spectra code.

jaxpot's units are ASE's (eV, Å, amu, e, fs); spectroscopy reports wavenumbers in cm⁻¹,
IR intensities in km/mol and Raman activities in Å⁴/amu, so the conversions live here, once.
"""

from __future__ import annotations

import math

ELEMENTARY_CHARGE = 1.602176634e-19  # C (= J/eV)
AMU = 1.66053906660e-27  # kg
SPEED_OF_LIGHT = 299792458.0  # m/s
AVOGADRO = 6.02214076e23  # 1/mol
VACUUM_PERMITTIVITY = 8.8541878128e-12  # F/m
BOLTZMANN = 1.380649e-23  # J/K
HBAR = 1.054571817e-34  # J s
ANGSTROM = 1e-10  # m
BOHR = 0.529177210903  # Å
HARTREE = 27.211386245988  # eV

# sqrt(eV / (Å² amu)) in rad/s: the angular frequency of a mass-weighted Hessian eigenvalue.
OMEGA_PER_SQRT_EV_A2_AMU = math.sqrt(ELEMENTARY_CHARGE / (ANGSTROM**2 * AMU))
# cm⁻¹ per sqrt(eV / (Å² amu)): ν̃ = ω / (2π c), about 521.47.
WAVENUMBER_PER_SQRT_EV_A2_AMU = OMEGA_PER_SQRT_EV_A2_AMU / (2.0 * math.pi * SPEED_OF_LIGHT * 100.0)
# km/mol per e²/amu: A = N_A / (12 ε0 c²) |dμ/dQ|² (the integrated absorption coefficient of a
# harmonic band, Wilson-Decius-Cross), about 974.88.
KM_PER_MOL_PER_E2_AMU = AVOGADRO / (12.0 * VACUUM_PERMITTIVITY * SPEED_OF_LIGHT**2) * ELEMENTARY_CHARGE**2 / AMU / 1e3


def wavenumber_to_angular_frequency(wavenumber):
    """cm⁻¹ -> rad/s."""
    return 2.0 * math.pi * SPEED_OF_LIGHT * 100.0 * wavenumber
