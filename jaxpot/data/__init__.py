"""Data: readers (extxyz and anything ASE reads, MD17/rMD17 npz), splits, statistics, loaders.

``read`` returns ``ase.Atoms`` in ASE units with canonical labels (``info``: energy, stress,
dipole, polarizability; ``arrays``: forces, charges) that ``jaxpot.graph.from_atoms(...,
labels=True)`` and ``GraphLoader`` read; ``split`` makes reproducible index splits;
``statistics`` gives E0s, energy and force scales and the average neighbour count; and
``GraphLoader`` yields fixed-shape padded batches so a data set compiles once.
"""

from jaxpot.data.loader import Epoch, GraphLoader
from jaxpot.data.readers import canonical_atoms, read, read_md17_npz
from jaxpot.data.splits import split
from jaxpot.data.statistics import (
    average_num_neighbors,
    composition,
    e0_from_isolated_atoms,
    fit_e0,
    force_rms,
    per_atom_energy_residuals,
    per_atom_energy_rms,
    statistics,
)
from jaxpot.data.units import conversion, unit_factor

__all__ = [
    "Epoch",
    "GraphLoader",
    "average_num_neighbors",
    "canonical_atoms",
    "composition",
    "conversion",
    "e0_from_isolated_atoms",
    "fit_e0",
    "force_rms",
    "per_atom_energy_residuals",
    "per_atom_energy_rms",
    "read",
    "read_md17_npz",
    "split",
    "statistics",
    "unit_factor",
]
