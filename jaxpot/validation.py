"""Input checks that run on the host, before anything is compiled.

Every failure is a ``ValueError`` that says what is wrong and how to fix it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# Shapes of the labels jaxpot reads, per structure with n atoms.
LABEL_SHAPES = {
    "energy": lambda n: (),
    "forces": lambda n: (n, 3),
    "stress": lambda n: (3, 3),
    "dipole": lambda n: (3,),
    "polarizability": lambda n: (3, 3),
    "charges": lambda n: (n,),
}


def check_structure(
    numbers: np.ndarray,
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray,
    name: str = "structure",
) -> None:
    """Check one structure's atoms, positions and cell."""
    if len(numbers) == 0:
        raise ValueError(f"{name} is empty (0 atoms); remove it from the data set.")
    if positions.shape != (len(numbers), 3):
        raise ValueError(f"{name}: positions have shape {positions.shape}, expected ({len(numbers)}, 3).")
    bad = ~np.isfinite(positions).all(axis=1)
    if bad.any():
        idx = np.flatnonzero(bad)[:5].tolist()
        raise ValueError(
            f"{name}: positions of atoms {idx} are NaN or infinite; fix or drop this structure."
        )
    if np.any(pbc):
        if not np.isfinite(cell).all():
            raise ValueError(f"{name}: the cell contains NaN or infinite values.")
        volume = abs(np.linalg.det(cell))
        lengths = np.linalg.norm(cell, axis=1)
        if volume < 1e-6 * max(float(np.prod(lengths)), 1e-12) or volume < 1e-8:
            raise ValueError(
                f"{name} is periodic (pbc={np.asarray(pbc).tolist()}) but its cell is singular "
                f"(volume {volume:.3g} Å^3, cell lengths {np.round(lengths, 4).tolist()}); give every "
                "lattice vector a non-zero, independent length (add vacuum along non-periodic "
                "directions) or set pbc=False."
            )


def check_min_distance(
    senders: np.ndarray, receivers: np.ndarray, distances: np.ndarray, min_distance: float, name: str
) -> None:
    """Refuse pairs closer than ``min_distance`` Å (two atoms at the same place)."""
    if len(distances) and distances.min() < min_distance:
        k = int(np.argmin(distances))
        a, b = sorted((int(senders[k]), int(receivers[k])))
        raise ValueError(
            f"{name}: atoms {a} and {b} are {distances[k]:.3g} Å "
            f"apart, closer than min_distance={min_distance} Å; the structure has overlapping "
            "atoms (a duplicated atom or a wrapping error). Fix it, or lower min_distance."
        )


def check_label(key: str, value: np.ndarray, n_atoms: int, name: str) -> np.ndarray:
    """Return ``value`` as float64 with the shape jaxpot expects for ``key``, or raise."""
    value = np.asarray(value, dtype=np.float64)
    expected = LABEL_SHAPES[key](n_atoms)
    if key == "stress" and value.shape == (6,):
        value = voigt_to_matrix(value)
    if key == "polarizability" and value.shape == (9,):
        value = value.reshape(3, 3)
    if value.shape != expected:
        hint = " (stress may also be given in Voigt order xx yy zz yz xz xy)" if key == "stress" else ""
        raise ValueError(
            f"{name}: label {key!r} has shape {value.shape}, expected {expected}{hint}."
        )
    if not np.isfinite(value).all():
        raise ValueError(f"{name}: label {key!r} contains NaN or infinite values.")
    return value


def voigt_to_matrix(v: Sequence[float]) -> np.ndarray:
    """ASE Voigt order (xx, yy, zz, yz, xz, xy) -> symmetric 3x3."""
    xx, yy, zz, yz, xz, xy = v
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]], dtype=np.float64)


def matrix_to_voigt(m: np.ndarray) -> np.ndarray:
    """Symmetric 3x3 -> ASE Voigt order (xx, yy, zz, yz, xz, xy)."""
    m = np.asarray(m)
    return np.array([m[0, 0], m[1, 1], m[2, 2], m[1, 2], m[0, 2], m[0, 1]])
