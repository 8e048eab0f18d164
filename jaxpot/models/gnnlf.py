"""GNN-LF: graph neural network with local frames.

Wang and Zhang, "Graph Neural Network with Local Frame for Molecular Potential Energy
Surface", LoG 2022 (arXiv:2208.00716).

Each atom gets a learned local frame, ``F`` equivariant vectors built from its neighbour
vectors; projecting geometry onto the frames turns it into invariant edge features, and an
ordinary invariant message-passing network runs on top. Nothing equivariant flows through the
layers, which is where the paper's speed and memory claim comes from.
"""

from __future__ import annotations

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from jaxpot.models.registry import register
from jaxpot.nn import cosine_cutoff, gaussian_basis
from jaxpot.nn.edge_sum import edge_sum
from jaxpot.nn.frames import local_frames, neighbour_directions

# Edges per chunk in the message sums (``jaxpot.nn.edge_sum``); GNN-LF's per-edge work in a
# layer is one product, so large chunks (few scan steps) are best, as for SchNet.
EDGE_CHUNK = 4096


def frame_projections(frames, query, key, unit, senders, receivers):
    """Invariant edge features from the frames, [E, F] each.

    Coordinate projection ``<E_i, u_ij>`` (the neighbour direction expressed in the frame of
    ``i``) and frame-frame projection ``<W_q E_i, W_k E_j>`` (how the frames of ``i`` and ``j``
    are oriented relative to each other), per channel (the paper's two projections). Both are
    O(3) invariant: dot products of two 1o vectors.
    """
    coordinate = jnp.einsum("exf,ex->ef", frames[receivers], unit)
    frame_frame = jnp.sum(query[receivers] * key[senders], axis=1)
    return coordinate, frame_frame


def _filter_messages(nodes, edge_chunk, senders):
    """``h_j * filter_ij`` [C, F] for ``edge_sum``."""
    (h,), (filters,) = nodes, edge_chunk
    return h[senders] * filters


@register("gnnlf", small={"features": 16, "num_interactions": 1, "num_rbf": 8})
class GNNLF(nn.Module):
    """GNN-LF backbone: invariant atom features ``F x 0e``.

    Following the paper (arXiv:2208.00716v2) and its reference implementation:

    1. edge filter ``m_ij = silu(W_e rbf(r_ij)) * f_cut(r_ij)`` (Gaussian radial basis,
       cosine cutoff); atom embedding ``s_i = emb(z_i) + sum_j m_ij * emb'(z_j)`` (the
       neighbour embedding);
    2. local frames ``E_i = sum_j (silu(W s_j) * m_ij) ⊗ u_ij`` [3, F] (``local_frames``);
    3. projections: coordinate ``<E_i, u_ij>`` and frame-frame ``<W_q E_i, W_k E_j>``
       (``frame_projections``), times ``f_cut``;
    4. filter decomposition: ``filter_ij = m_ij * MLP([coord, frame-frame])``, computed once
       and shared by every layer;
    5. ``num_interactions`` invariant layers ``s_i <- s_i + sum_j filter_ij * silu(W_t s_j)``.

    Forces come from ``jax.grad`` of the energy. The frames are not normalised (no division
    by their norm), so nothing is singular at degenerate frames; see ``local_frames``.
    O(3) invariance (inversion too) holds because every feature is a dot product of two 1o
    vectors or a distance.

    Defaults: F = 256 and 6 layers, ``num_rbf`` = 32 Gaussians, 5 Å cutoff (the MD17 scale
    of the paper's experiments; the reference code tunes them per molecule). The reference
    code's optional layer norms are left out.

    Attributes:
      num_species: size of the species table (set by the Potential).
      cutoff: Å.
      features: F (hidden width and number of frame vectors).
      num_interactions: message-passing layers.
      num_rbf: Gaussians on [0, cutoff].

    Returns:
      ``e3nn.IrrepsArray`` [N, "F x 0e"].
    """

    num_species: int = 1
    cutoff: float = 5.0
    features: int = 256
    num_interactions: int = 6
    num_rbf: int = 32

    @nn.compact
    def __call__(self, graph: jraph.GraphsTuple) -> e3nn.IrrepsArray:
        f = self.features
        positions = graph.nodes["positions"]
        n = positions.shape[0]
        senders, receivers = graph.senders, graph.receivers
        r, unit = neighbour_directions(graph)
        f_cut = cosine_cutoff(r, self.cutoff)[:, None]
        rbf = gaussian_basis(r, self.cutoff, self.num_rbf)
        mask = jax.nn.silu(nn.Dense(f, name="edge_filter")(rbf)) * f_cut  # [E, F]

        species = graph.nodes["species"]
        s = nn.Embed(self.num_species, f, name="embedding")(species).astype(positions.dtype)
        neighbours = nn.Embed(self.num_species, f, name="neighbour_embedding")(species).astype(positions.dtype)
        s = s + edge_sum(_filter_messages, (neighbours,), (mask,), senders, receivers, n, EDGE_CHUNK)

        h = jax.nn.silu(nn.Dense(f, name="frame_in")(s))
        frames = local_frames(h, mask, unit, senders, receivers, n, EDGE_CHUNK)  # [N, 3, F]
        query = nn.Dense(f, use_bias=False, name="frame_query")(frames)  # linear in E: stays 1o
        key = nn.Dense(f, use_bias=False, name="frame_key")(frames)
        coordinate, frame_frame = frame_projections(frames, query, key, unit, senders, receivers)
        directions = jnp.concatenate([coordinate, frame_frame], axis=-1) * f_cut
        d = nn.Dense(2 * f, name="direction_0")(directions)
        d = jax.nn.silu(nn.Dense(f, name="direction_1")(jax.nn.silu(d)))
        filters = mask * d  # [E, F], shared by all layers (filter decomposition)

        for t in range(self.num_interactions):
            h = jax.nn.silu(nn.Dense(f, name=f"interaction_{t}")(s))
            s = s + edge_sum(_filter_messages, (h,), (filters,), senders, receivers, n, EDGE_CHUNK)
        return e3nn.IrrepsArray(f"{f}x0e", s)
