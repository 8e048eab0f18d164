"""Host neighbour lists (numpy, via vesin) for molecules and periodic cells.

The periodic case handles any cell shape and any cutoff, including cutoffs larger than half
a cell length, where one neighbour appears through several images: every image within the
cutoff is its own edge with its own shift vector.
"""

from __future__ import annotations

import numpy as np
import vesin


def neighbor_list(
    positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All directed pairs (i -> j) with ``|r_j - r_i + S cell| < cutoff``, i != j or S != 0.

    Args:
      positions: [N, 3] Å.
      cell: [3, 3] Å, rows are lattice vectors (ignored where ``pbc`` is False).
      pbc: [3] bool.
      cutoff: Å.

    Returns:
      ``senders`` [E] (i), ``receivers`` [E] (j), ``shifts`` [E, 3] Å (``S @ cell``), sorted by
      receiver so that segment sums over receivers see sorted indices.
    """
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool).reshape(3)
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    if len(positions) == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros((0, 3))
    box = cell if pbc.any() else np.zeros((3, 3))
    calculator = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, s = calculator.compute(points=positions, box=box, periodic=pbc.tolist(), quantities="ijS")
    order = np.lexsort((i, j))  # by receiver j, then sender i: deterministic and sorted
    i, j, s = i[order], j[order], s[order]
    shifts = s.astype(np.float64) @ cell if pbc.any() else np.zeros((len(i), 3))
    return i.astype(np.int32), j.astype(np.int32), shifts
