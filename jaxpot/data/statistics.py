"""Data-set statistics that set a Potential's E0s and scale, and models' normalisations.

Labels are read as ``jaxpot.graph.from_atoms(..., labels=True)`` reads them (canonical keys in
``atoms.info``, ``atoms.arrays`` or the calculator's results); structures without a label
are left out of the statistics that need it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from jaxpot.graph import _labels_of, iter_atoms
from jaxpot.neighbors import neighbor_list


def _species_numbers(species: Sequence[int | str]) -> tuple[int, ...]:
    from jaxpot.potential import _species_numbers as numbers

    return numbers(species)


def _labels(atoms, k: int) -> dict[str, np.ndarray]:
    return _labels_of(atoms, len(atoms), f"structure {k}", None)


def composition(structures, species: Sequence[int | str]) -> np.ndarray:
    """[M, S] counts of each species (in ``species`` order) per structure."""
    from ase.data import chemical_symbols

    numbers = _species_numbers(species)
    table = {z: i for i, z in enumerate(numbers)}
    structures = iter_atoms(structures)
    counts = np.zeros((len(structures), len(numbers)), dtype=np.float64)
    for k, atoms in enumerate(structures):
        for z, c in zip(*np.unique(atoms.numbers, return_counts=True)):
            if int(z) not in table:
                raise ValueError(
                    f"structure {k} contains {chemical_symbols[int(z)]}, which is not among the species "
                    f"{[chemical_symbols[s] for s in numbers]}; add it to species or drop the structure."
                )
            counts[k, table[int(z)]] = c
    return counts


def _energies(structures) -> tuple[np.ndarray, np.ndarray]:
    """(indices of structures with an energy, their energies in eV)."""
    idx, energies = [], []
    for k, atoms in enumerate(structures):
        labels = _labels(atoms, k)
        if "energy" in labels:
            idx.append(k)
            energies.append(float(labels["energy"]))
    return np.array(idx, dtype=np.int64), np.array(energies, dtype=np.float64)


def fit_e0(structures, species: Sequence[int | str]) -> np.ndarray:
    """[S] per-species reference energies (eV) by least squares: ``counts @ e0 ≈ energies``.

    ``numpy.linalg.lstsq`` in float64 over every structure with an energy. Where the
    compositions do not determine every E0 (e.g. one molecule, as in MD17), it returns the
    minimum-norm solution, which still makes the residual energies centred; species that
    appear in no structure get 0.
    """
    structures = iter_atoms(structures)
    idx, energies = _energies(structures)
    if len(idx) == 0:
        raise ValueError("fit_e0() found no structure with an energy label")
    counts = composition([structures[k] for k in idx], species)
    e0, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return e0


def e0_from_isolated_atoms(structures, species: Sequence[int | str]) -> np.ndarray:
    """[S] reference energies (eV) from the single-atom frames among ``structures``.

    Frames with more than one atom are ignored, so a whole training file that contains its
    isolated atoms (``config_type=IsolatedAtom`` in MACE's convention) can be passed.

    Raises:
      ValueError: a species without an isolated-atom frame, or two frames of the same
        element with different energies.
    """
    from ase.data import chemical_symbols

    numbers = _species_numbers(species)
    found: dict[int, float] = {}
    for k, atoms in enumerate(iter_atoms(structures)):
        if len(atoms) != 1:
            continue
        labels = _labels(atoms, k)
        if "energy" not in labels:
            continue
        z, e = int(atoms.numbers[0]), float(labels["energy"])
        if z in found and abs(found[z] - e) > 1e-6:
            raise ValueError(
                f"two isolated {chemical_symbols[z]} atoms have different energies "
                f"({found[z]!r} and {e!r} eV, the second in structure {k}); keep one."
            )
        found[z] = e
    missing = [chemical_symbols[z] for z in numbers if z not in found]
    if missing:
        raise ValueError(
            f"no isolated-atom frame (one atom with an energy) for {missing}; "
            f"found {[chemical_symbols[z] for z in sorted(found)]}. Use fit_e0() instead, or add them."
        )
    return np.array([found[z] for z in numbers], dtype=np.float64)


def per_atom_energy_residuals(structures, species: Sequence[int | str], e0: Sequence[float]) -> np.ndarray:
    """``(E - counts @ e0) / n_atoms`` (eV/atom) for every structure with an energy."""
    structures = iter_atoms(structures)
    idx, energies = _energies(structures)
    chosen = [structures[k] for k in idx]
    counts = composition(chosen, species)
    e0 = np.asarray(e0, dtype=np.float64).reshape(counts.shape[1])
    return (energies - counts @ e0) / np.array([len(a) for a in chosen], dtype=np.float64)


def per_atom_energy_rms(structures, species: Sequence[int | str], e0: Sequence[float]) -> float:
    """RMS of the per-atom energy residual after subtracting the E0s (eV/atom)."""
    r = per_atom_energy_residuals(structures, species, e0)
    if len(r) == 0:
        raise ValueError("per_atom_energy_rms() found no structure with an energy label")
    return float(np.sqrt(np.mean(r**2)))


def force_rms(structures) -> float:
    """RMS of all force components (eV/Å) over every structure with forces."""
    total, count = 0.0, 0
    for k, atoms in enumerate(iter_atoms(structures)):
        forces = _labels(atoms, k).get("forces")
        if forces is not None:
            total += float(np.sum(forces**2))
            count += forces.size
    if count == 0:
        raise ValueError("force_rms() found no structure with a forces label")
    return float(np.sqrt(total / count))


def average_num_neighbors(structures, cutoff: float) -> float:
    """Mean number of neighbours within ``cutoff`` (Å) per atom, images included."""
    edges, nodes = 0, 0
    for atoms in iter_atoms(structures):
        senders, _, _ = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
        edges += len(senders)
        nodes += len(atoms)
    if nodes == 0:
        raise ValueError("average_num_neighbors() got no atoms")
    return edges / nodes


def statistics(
    structures, species: Sequence[int | str], cutoff: float, e0: Sequence[float] | str = "fit"
) -> dict:
    """Everything a training run needs from its data, as a JSON-serialisable dict.

    Args:
      structures: ``ase.Atoms`` with labels.
      species: elements (symbols or atomic numbers), the Potential's species table.
      cutoff: Å, for the neighbour count.
      e0: ``"fit"`` (least squares, ``fit_e0``), ``"isolated"`` (``e0_from_isolated_atoms``)
        or the [S] values themselves.

    Returns:
      ``{"num_structures", "num_atoms", "max_atoms", "species" (symbols), "e0" [S] eV,
      "per_atom_energy_mean" eV, "per_atom_energy_rms" eV (of the residual after E0),
      "force_rms" eV/Å (None without forces), "average_num_neighbors"}``.
    """
    from ase.data import chemical_symbols

    structures = iter_atoms(structures)
    if not structures:
        raise ValueError("statistics() got no structures")
    numbers = _species_numbers(species)
    if isinstance(e0, str):
        if e0 == "fit":
            e0 = fit_e0(structures, numbers)
        elif e0 == "isolated":
            e0 = e0_from_isolated_atoms(structures, numbers)
        else:
            raise ValueError(f"e0 must be 'fit', 'isolated' or a list of values, got {e0!r}")
    e0 = np.asarray(e0, dtype=np.float64).reshape(len(numbers))
    residuals = per_atom_energy_residuals(structures, numbers, e0)
    has_forces = any("forces" in _labels(a, k) for k, a in enumerate(structures))
    return {
        "num_structures": len(structures),
        "num_atoms": int(sum(len(a) for a in structures)),
        "max_atoms": int(max(len(a) for a in structures)),
        "species": [chemical_symbols[z] for z in numbers],
        "e0": e0.tolist(),
        "per_atom_energy_mean": float(np.mean(residuals)) if len(residuals) else None,
        "per_atom_energy_rms": float(np.sqrt(np.mean(residuals**2))) if len(residuals) else None,
        "force_rms": force_rms(structures) if has_forces else None,
        "average_num_neighbors": average_num_neighbors(structures, cutoff),
    }
