"""Unit conversion of labels read from files into ASE's units (DESIGN.md, "Units").

A file's units are given as a dict, e.g. ``{"energy": "kcal/mol", "length": "Bohr"}``. Every
label follows from the energy and length units unless given on its own:

=================  ==========================  ======================================
label              converted with              own unit (optional key of ``units``)
=================  ==========================  ======================================
positions, cell    length                      -
energy, virial     energy                      -
forces             energy / length             -
stress             energy / length³            ``"stress"``: eV/Å^3, GPa, kbar, bar
dipole             e · length                  ``"dipole"``: e*Å, e*Bohr, e*nm, Debye, a.u.
polarizability     length³ (a volume)          ``"polarizability"``: Å^3, Bohr^3, nm^3, a.u.
charges            e (never converted)         -
=================  ==========================  ======================================

Polarizabilities are polarizability volumes (α / 4πε₀), so "a.u." is Bohr³ and the energy
unit does not enter. Unit names are case-insensitive; "A", "Ang", "Angstrom" and "Å" are
the same.
"""

from __future__ import annotations

import dataclasses

from ase import units as ase_units

ENERGY_UNITS = {
    "ev": 1.0,
    "mev": 1e-3,
    "hartree": ase_units.Hartree,
    "ha": ase_units.Hartree,
    "eh": ase_units.Hartree,
    "ry": ase_units.Rydberg,
    "rydberg": ase_units.Rydberg,
    "kcal/mol": ase_units.kcal / ase_units.mol,
    "kj/mol": ase_units.kJ / ase_units.mol,
}
LENGTH_UNITS = {
    "å": 1.0,
    "a": 1.0,
    "bohr": ase_units.Bohr,
    "a0": ase_units.Bohr,
    "nm": 10.0,
    "pm": 0.01,
}
DIPOLE_UNITS = {
    "e*å": 1.0,
    "eå": 1.0,
    "e*a": 1.0,
    "e*bohr": ase_units.Bohr,
    "e*a0": ase_units.Bohr,
    "a.u.": ase_units.Bohr,
    "au": ase_units.Bohr,
    "e*nm": 10.0,
    "debye": ase_units.Debye,
    "d": ase_units.Debye,
}
POLARIZABILITY_UNITS = {
    "å^3": 1.0,
    "a^3": 1.0,
    "bohr^3": ase_units.Bohr**3,
    "a0^3": ase_units.Bohr**3,
    "a.u.": ase_units.Bohr**3,
    "au": ase_units.Bohr**3,
    "nm^3": 1000.0,
}
STRESS_UNITS = {
    "ev/å^3": 1.0,
    "ev/a^3": 1.0,
    "gpa": ase_units.GPa,
    "kbar": 0.1 * ase_units.GPa,
    "bar": ase_units.bar,
}
_TABLES = {
    "energy": ENERGY_UNITS,
    "length": LENGTH_UNITS,
    "dipole": DIPOLE_UNITS,
    "polarizability": POLARIZABILITY_UNITS,
    "stress": STRESS_UNITS,
}


def _normalise(name: str) -> str:
    s = str(name).strip().lower().replace(" ", "").replace("·", "*").replace("³", "^3")
    for alias in ("angstrom", "ang"):
        s = s.replace(alias, "å")
    return s


def unit_factor(quantity: str, name: str) -> float:
    """Factor that converts a value of ``quantity`` in unit ``name`` into ASE units."""
    if quantity not in _TABLES:
        raise ValueError(f"unknown quantity {quantity!r} in units; use one of {list(_TABLES)}")
    table = _TABLES[quantity]
    key = _normalise(name)
    if key not in table:
        raise ValueError(f"unknown {quantity} unit {name!r}; jaxpot knows {sorted(table)} (case-insensitive)")
    return float(table[key])


@dataclasses.dataclass(frozen=True)
class Conversion:
    """Multiply a value in the file's units by these to get ASE units."""

    energy: float = 1.0
    length: float = 1.0
    dipole: float = 1.0
    polarizability: float = 1.0
    stress: float = 1.0

    @property
    def forces(self) -> float:
        return self.energy / self.length

    @property
    def identity(self) -> bool:
        return all(v == 1.0 for v in dataclasses.astuple(self))


def conversion(units: dict[str, str] | None) -> Conversion:
    """Resolve a ``units`` dict (see the module docstring) into conversion factors."""
    units = dict(units or {})
    unknown = sorted(set(units) - set(_TABLES))
    if unknown:
        raise ValueError(f"units has unknown key(s) {unknown}; use {list(_TABLES)}")
    energy = unit_factor("energy", units.get("energy", "eV"))
    length = unit_factor("length", units.get("length", "Å"))
    return Conversion(
        energy=energy,
        length=length,
        dipole=unit_factor("dipole", units["dipole"]) if "dipole" in units else length,
        polarizability=unit_factor("polarizability", units["polarizability"]) if "polarizability" in units else length**3,
        stress=unit_factor("stress", units["stress"]) if "stress" in units else energy / length**3,
    )
