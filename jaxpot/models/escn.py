"""eSCN: SO(3) convolutions reduced to SO(2) convolutions.

Passaro and Zitnick, "Reducing SO(3) Convolutions to SO(2) for Efficient Equivariant GNNs",
ICML 2023 (arXiv:2302.03655).
"""

from __future__ import annotations

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from jaxpot.graph import edge_vectors
from jaxpot.models.registry import register
from jaxpot.nn.cutoff import polynomial_envelope
from jaxpot.nn.so2 import SO2Convolution
from jaxpot.nn.species_distance import SpeciesDistanceEmbedding
from jaxpot.nn.sphere_grid import default_resolution, grid_matrices
from jaxpot.nn.wigner import edge_frame, num_coefficients, safe_unit, spherical_channels_to_irreps, truncated_indices, wigner_d


def edge_frame_rotations(graph: jraph.GraphsTuple, lmax: int, mmax: int):
    """``(to_edge [E, K, (L+1)^2], r [E])``: rows ``|m| <= mmax`` of ``D(R_e)``, which take global
    coefficients into each edge's frame (edge along +y); its transpose takes them back."""
    unit, r = safe_unit(edge_vectors(graph))
    d = wigner_d(edge_frame(unit), lmax)
    return d[:, truncated_indices(lmax, mmax), :], r


def grid_constants(lmax: int, resolution, dtype, truncate=None):
    res = default_resolution(lmax, truncate) if resolution is None else tuple(resolution)
    to_grid, from_grid = grid_matrices(lmax, res[0], res[1], truncate)
    return jnp.asarray(to_grid, dtype), jnp.asarray(from_grid, dtype)


class ESCNMessage(nn.Module):
    """Message block (Sec. 5, Fig. 3; reference ``MessageBlock``): rotate source and target
    embeddings into the edge frame keeping ``|m| <= mmax`` (eq. 6), one SO(2) convolution each
    (eqs. 7-10, weights modulated by the invariant edge embedding), add, SiLU point-wise on the
    edge frame's sphere grid (``|m| <= mmax`` coefficients), rotate back, times the cutoff
    envelope; summed over incoming edges."""

    lmax: int
    mmax: int
    sphere_channels: int
    hidden_channels: int
    grid_resolution: tuple[int, int] | None

    @nn.compact
    def __call__(self, x, edge_embedding, to_edge, envelope, senders, receivers):
        c = self.sphere_channels
        src = jnp.einsum("ekj,ejc->ekc", to_edge, x[senders])
        tgt = jnp.einsum("ekj,ejc->ekc", to_edge, x[receivers])
        src = SO2Convolution(self.lmax, self.mmax, c, self.hidden_channels, name="so2_source")(src, edge_embedding)
        tgt = SO2Convolution(self.lmax, self.mmax, c, self.hidden_channels, name="so2_target")(tgt, edge_embedding)
        to_grid, from_grid = grid_constants(self.lmax, self.grid_resolution, src.dtype, truncate=self.mmax)
        msg = jnp.einsum("kp,epc->ekc", from_grid, jax.nn.silu(jnp.einsum("pk,ekc->epc", to_grid, src + tgt)))
        msg = jnp.einsum("ekj,ekc->ejc", to_edge, msg) * envelope[:, None, None]
        return jax.ops.segment_sum(msg, receivers, x.shape[0])


class ESCNLayer(nn.Module):
    """Layer block (reference ``LayerBlock``): messages, then a point-wise MLP on the sphere grid
    of ``[x, messages]`` (``2C -> C -> C -> C``, no biases, SiLU), projected back."""

    lmax: int
    mmax: int
    sphere_channels: int
    hidden_channels: int
    grid_resolution: tuple[int, int] | None

    @nn.compact
    def __call__(self, x, edge_embedding, to_edge, envelope, senders, receivers):
        c = self.sphere_channels
        msg = ESCNMessage(self.lmax, self.mmax, c, self.hidden_channels, self.grid_resolution, name="message")(
            x, edge_embedding, to_edge, envelope, senders, receivers
        )
        to_grid, from_grid = grid_constants(self.lmax, self.grid_resolution, x.dtype)
        g = jnp.einsum("pk,nkc->npc", to_grid, jnp.concatenate([x, msg], axis=-1))
        g = jax.nn.silu(nn.Dense(c, use_bias=False, name="fc1_sphere")(g))
        g = jax.nn.silu(nn.Dense(c, use_bias=False, name="fc2_sphere")(g))
        g = nn.Dense(c, use_bias=False, name="fc3_sphere")(g)
        return jnp.einsum("kp,npc->nkc", from_grid, g)


@register(
    "escn",
    small={
        "num_layers": 2,
        "lmax": 2,
        "mmax": 1,
        "sphere_channels": 8,
        "hidden_channels": 8,
        "edge_channels": 8,
        "distance_resolution": 0.25,
    },
)
class ESCN(nn.Module):
    """eSCN backbone: spherical channels [N, (lmax+1)^2, C] updated by SO(2) convolutions.

    Node embeddings are the coefficients of C functions on the sphere (real spherical harmonics
    up to ``lmax``); they start as an element embedding in ``l = 0`` (Sec. 5). Each of
    ``num_layers`` layers (``ESCNLayer``) computes messages in every edge's frame, where the
    SO(3) convolution of the source embedding with the edge is an SO(2) convolution (eq. 9: per
    order ``m``, complex weights mixing all ``l >= m``; orders above ``mmax`` dropped), then
    mixes the aggregated messages into the embedding with a point-wise MLP on the sphere grid.
    Layers after the first are residual. The energy head reads the ``l = 0`` channels (the
    paper's energy block averages an MLP over 128 sphere points instead; forces here are
    ``-dE/dr``, where the paper predicts them directly).

    Equivariance. The Wigner rotations and SO(2) convolutions are exactly SO(3)-equivariant
    (independent of the edge frame's roll). The two point-wise SiLU non-linearities on sphere
    grids are not: ``act(f)`` is not band-limited and its part beyond the grid's band-limit
    aliases (``jaxpot.nn.sphere_grid``), so outputs are equivariant up to an error that falls
    with ``grid_resolution`` (measured in tests/test_scn.py). The SO(2) convolution's imaginary
    weights make the model chiral: it is SO(3)- but not O(3)-equivariant (a mirror image has a
    different energy), as in the paper.

    Departures, stated: messages are multiplied by a polynomial cutoff envelope (p = 6) so that
    energies are smooth at the cutoff (the reference has none); one resolution (``lmax_list`` of
    length one); the edge frame is a deterministic function of the edge (two smooth charts)
    where the reference draws a random roll.

    Defaults are the paper's OC20 model: 12 layers, lmax 6, mmax 2, 128 sphere channels,
    256 hidden, 128 edge channels, Gaussians every 0.02 Å.

    Attributes:
      num_species: size of the species table (set by the Potential).
      cutoff: Å (set by the Potential).
      num_layers, lmax, mmax, sphere_channels, hidden_channels, edge_channels: as in fairchem.
      distance_resolution: Gaussian spacing, Å; ``basis_width_scalar``: width / spacing.
      grid_resolution: ``(n_theta, n_phi)`` of the Gauss-Legendre sphere grids, or None for
        ``(2 (lmax+1), 4 (lmax+1) - 1)`` on nodes and ``(2 (lmax+1), 4 (mmax+1) - 1)`` on the
        edge frames, whose coefficients have ``|m| <= mmax`` (``sphere_grid.default_resolution``).

    Returns:
      ``e3nn.IrrepsArray`` [N, "C x 0e + C x 1o + C x 2e + ..."] up to ``lmax``.
    """

    num_species: int = 1
    cutoff: float = 8.0
    num_layers: int = 12
    lmax: int = 6
    mmax: int = 2
    sphere_channels: int = 128
    hidden_channels: int = 256
    edge_channels: int = 128
    distance_resolution: float = 0.02
    basis_width_scalar: float = 1.0
    grid_resolution: tuple[int, int] | None = None

    @nn.compact
    def __call__(self, graph: jraph.GraphsTuple) -> e3nn.IrrepsArray:
        positions = graph.nodes["positions"]
        species = graph.nodes["species"]
        n, c = positions.shape[0], self.sphere_channels
        to_edge, r = edge_frame_rotations(graph, self.lmax, self.mmax)
        envelope = polynomial_envelope(r, self.cutoff, 6)
        x0 = nn.Embed(self.num_species, c, name="sphere_embedding")(species).astype(positions.dtype)
        x = jnp.zeros((n, num_coefficients(self.lmax), c), positions.dtype).at[:, 0, :].set(x0)
        for i in range(self.num_layers):
            edge_embedding = SpeciesDistanceEmbedding(
                self.edge_channels,
                self.num_species,
                self.cutoff,
                self.distance_resolution,
                self.basis_width_scalar,
                name=f"edge_{i}",
            )(r, species[graph.senders], species[graph.receivers])
            new = ESCNLayer(self.lmax, self.mmax, c, self.hidden_channels, self.grid_resolution, name=f"layer_{i}")(
                x, edge_embedding, to_edge, envelope, graph.senders, graph.receivers
            )
            x = new if i == 0 else x + new
        return spherical_channels_to_irreps(x)
