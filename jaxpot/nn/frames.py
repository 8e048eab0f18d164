"""Local frames from neighbour directions (GNN-LF, LEFTNet): pure functions, no parameters."""

from __future__ import annotations

import jax.numpy as jnp
import jraph

from jaxpot.graph import edge_vectors
from jaxpot.nn.edge_sum import edge_sum
from jaxpot.nn.norm import safe_norm


def neighbour_directions(graph: jraph.GraphsTuple):
    """Distances [E] (Å) and unit vectors [E, 3] from the receiver ``i`` to the sender ``j``.

    ``u_ij = (x_j - x_i) / |x_j - x_i|``; 0 on zero-length (padding) edges, with finite
    gradients there.
    """
    vec = -edge_vectors(graph)  # edge_vectors is x_i - x_j (receiver minus sender)
    r = safe_norm(vec, axis=-1)
    return r, vec / jnp.where(r > 0, r, 1.0)[:, None]


def _frame_messages(nodes, edge_chunk, senders):
    """``(h_j * w_ij) ⊗ u_ij`` [C, 3, F] for ``edge_sum``."""
    (h,), (weight, unit) = nodes, edge_chunk
    return (h[senders] * weight)[:, None, :] * unit[:, :, None]


def local_frames(h, weight, unit, senders, receivers, num_nodes, chunk_size: int = 4096):
    """Frames ``E_i = sum_j (h_j * w_ij) ⊗ u_ij`` [N, 3, F] (the paper's local frame).

    ``F`` equivariant (1o) vectors per atom, a learned weighted sum of its neighbour
    directions. They are neither normalised nor orthogonalised: where the environment is
    symmetric (a linear molecule, a Td or Oh site) the frame degenerates to low rank or to zero
    and the projections on it shrink continuously, so the energy stays smooth and invariant
    there. (The paper: symmetric environments admit only degenerate frames, and the reduced
    degrees of freedom there need fewer projections.)
    """
    return edge_sum(_frame_messages, (h,), (weight, unit), senders, receivers, num_nodes, chunk_size)
