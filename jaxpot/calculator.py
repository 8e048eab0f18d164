"""ASE calculator for any ``Potential`` (DESIGN.md, "calculator.py").

``jaxpot.Calculator(potential)`` gives energy, free_energy, forces, stress (periodic cells only),
and dipole and charges when the potential has a dipole head through ``Potential.calculate``: the host builds
the neighbour list and pads the graph to bucketed sizes, so the jitted function compiles once
per bucket, and an ASE MD run compiles a handful of times, not once per step.
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator as _AseCalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes


class Calculator(_AseCalculator):
    """ASE ``Calculator`` wrapping a ``jaxpot.Potential``.

    Args:
      potential: a ``jaxpot.Potential`` (``jaxpot.load(path)`` or ``Potential.create``).
      **kwargs: passed to ``ase.calculators.calculator.Calculator`` (``label``, ...).

    Stress is computed with energy and forces when it is asked for (``atoms.get_stress()``,
    NPT dynamics, cell relaxations) and the cell is periodic; for a molecule it raises
    ``PropertyNotImplementedError`` as ASE expects. ``dipole`` (e·Å) and ``charges`` (e) are
    offered only when the potential has a dipole head. ASE has no polarizability property:
    with a polarizability head, ``calc.results["polarizability"]`` holds it ([3, 3] Å³) after
    any calculation.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]
    default_parameters: dict = {}
    nolabel = True

    def __init__(self, potential, **kwargs):
        super().__init__(**kwargs)
        self.potential = potential
        if _has_dipole(potential):
            self.implemented_properties = list(type(self).implemented_properties) + ["dipole", "charges"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        periodic = bool(np.any(self.atoms.pbc))
        if "stress" in properties and not periodic:
            raise PropertyNotImplementedError("stress needs a periodic cell (atoms.pbc)")
        result = self.potential.calculate(self.atoms, stress=periodic and "stress" in properties)
        self.results = {
            "energy": float(result["energy"]),
            "free_energy": float(result["energy"]),
            "forces": np.asarray(result["forces"], np.float64),
        }
        if "stress" in result:
            self.results["stress"] = np.asarray(result["stress"], np.float64)
        for key in ("dipole", "charges", "polarizability"):
            if key in result:
                self.results[key] = np.asarray(result[key], np.float64)

    def compilations(self) -> int:
        """Number of shapes the potential's jitted functions have compiled so far."""
        total = 0
        for fn in getattr(self.potential, "_cache", {}).values():
            size = getattr(fn, "_cache_size", None)
            if callable(size):
                total += int(size())
        return total


def _has_dipole(potential) -> bool:
    return "dipole" in getattr(potential, "heads", {})
