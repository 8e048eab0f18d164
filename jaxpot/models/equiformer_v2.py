"""EquiformerV2: Equiformer with eSCN convolutions for higher degrees.

Liao, Wood, Das and Smidt, "EquiformerV2: Improved Equivariant Transformer for Scaling to
Higher-Degree Representations", ICLR 2024, arXiv:2306.12059 (Sec. 4, Fig. 1). Builds on
Equiformer (``jaxpot.models.equiformer``) and eSCN's SO(2) convolution (``jaxpot.nn.so2``).

Registered as ``"equiformer_v2"`` when this module is imported. ``jaxpot.models`` does not import
it yet, so it is not in the conformance suite, whose rotation and inversion checks are exact:
the sphere-grid activations alias (rotation errors fall with ``grid_resolution``) and the SO(2)
convolutions are chiral, as for eSCN. ``tests/test_equiformer_v2.py`` runs the suite's checks
with tolerances for those two properties.
"""

from __future__ import annotations

from functools import lru_cache

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from jaxpot.graph import edge_vectors
from jaxpot.models.equiformer import RadialProfile
from jaxpot.models.escn import grid_constants
from jaxpot.models.registry import register
from jaxpot.nn.cutoff import polynomial_envelope
from jaxpot.nn.graph_attention import attention_weights, mlp_attention_logits
from jaxpot.nn.layer_norm import SeparableLayerNorm
from jaxpot.nn.radial import gaussian_basis
from jaxpot.nn.so2 import SO2Convolution, m_positions
from jaxpot.nn.wigner import edge_frame, num_coefficients, safe_unit, truncated_indices, wigner_d


@lru_cache(maxsize=None)
def radial_groups(lmax: int, mmax: int) -> tuple[np.ndarray, int]:
    """``(group [K], num_groups)``: the ``(l, |m|)`` group of every truncated edge-frame coefficient.

    EquiformerV2's radial function weights the SO(2) convolution's input per degree, order
    ``|m|`` and channel; ``+m`` and ``-m`` share a weight (so the modulation commutes with
    rotations about the edge axis).
    """
    pairs = [(l, abs(m)) for l in range(lmax + 1) for m in range(-min(l, mmax), min(l, mmax) + 1)]
    keys = sorted(set(pairs))
    return np.array([keys.index(p) for p in pairs]), len(keys)


def separable_s2_activation(scalars: jnp.ndarray, x: jnp.ndarray, to_grid: jnp.ndarray, from_grid: jnp.ndarray) -> jnp.ndarray:
    """Separable S2 activation (Sec. 4.3): ``l = 0`` from ``SiLU(scalars)``, ``l > 0`` from the S2 activation.

    The S2 activation evaluates each channel's function on a sphere grid, applies SiLU point-wise
    and projects back (``from_grid @ silu(to_grid @ x)``); its ``l = 0`` output is replaced by
    SiLU of separate invariant ``scalars``, which the paper found to stabilise training at high
    degrees.

    Args:
      scalars: [..., C] invariant inputs of the ``l = 0`` outputs.
      x: [..., K, C] coefficients (coefficient 0 is ``l = 0``; full or ``|m| <= mmax`` layout,
        matching the grid matrices).
    """
    s2 = jnp.einsum("kp,...pc->...kc", from_grid, jax.nn.silu(jnp.einsum("pk,...kc->...pc", to_grid, x)))
    return jnp.concatenate([jax.nn.silu(scalars)[..., None, :], s2[..., 1:, :]], axis=-2)


class SO3Linear(nn.Module):
    """Linear map of spherical channels [..., (L+1)^2, C_in] -> [..., (L+1)^2, C_out]: one matrix per
    degree (shared by its orders, so it commutes with rotations), a bias on ``l = 0`` only
    (the reference's ``SO3_LinearV2``)."""

    features: int

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        n_coeff, c_in = x.shape[-2], x.shape[-1]
        lmax = int(round(n_coeff**0.5)) - 1
        init = nn.initializers.lecun_normal(in_axis=-2, out_axis=-1, batch_axis=(0,))
        kernel = self.param("kernel", init, (lmax + 1, c_in, self.features), jnp.float32).astype(x.dtype)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32).astype(x.dtype)
        degree = np.concatenate([np.full(2 * l + 1, l) for l in range(lmax + 1)])
        y = jnp.einsum("...kc,kcd->...kd", x, kernel[degree])
        return y.at[..., 0, :].add(bias)


class SO2GraphAttention(nn.Module):
    """Equivariant graph attention with eSCN convolutions (Sec. 4, Fig. 1(b); reference ``SO2EquivariantGraphAttention``).

    For every edge ``j -> i``, in the edge's frame (edge along +y, orders ``|m| <= mmax``, eSCN's
    rotation ``D(R_ij)``):

    * ``x_ij = D(R_ij) [x_j, x_i]`` (source and target channels concatenated), multiplied per
      degree, order and channel by a radial function of the distance and both species
      (Sec. 4.1: the SO(2) convolution replaces Equiformer's depth-wise tensor product);
    * ``f_ij = SO2Conv_1(x_ij)``, plus invariant outputs of its ``m = 0`` block: the attention
      scalars ``f_ij^(0)`` (``num_heads x alpha_channels``) and the gating scalars;
    * attention re-normalisation (Sec. 4.2): ``z_ij = a^T LeakyReLU(LayerNorm(f_ij^(0)))`` per
      head (a layer norm before the non-linearity of Equiformer's MLP attention);
    * value: ``v_ij = SO2Conv_2(SepS2Act(gating, f_ij))`` (separable S2 activation, Sec. 4.3,
      on the edge frame's ``|m| <= mmax`` grid), rotated back with ``D(R_ij)^T``;
    * ``y_i = SO3Linear(concat_h sum_j alpha_ij^h u(r_ij) v_ij^h)`` with Equiformer's
      envelope-weighted softmax (``jaxpot.nn.graph_attention``), so the energy is smooth at
      the cutoff.
    """

    num_species: int
    lmax: int
    mmax: int
    hidden_channels: int
    num_heads: int
    alpha_channels: int
    value_channels: int
    out_channels: int
    edge_channels: int
    grid_resolution: tuple[int, int] | None
    attention_renorm: bool = True

    @nn.compact
    def __call__(self, x, basis, species, to_edge, envelope, senders, receivers):
        num_nodes = x.shape[0]
        e = senders.shape[0]
        h, a = self.num_heads, self.alpha_channels
        # invariant edge features: distance basis and embeddings of both species (per block, as the
        # reference's share_atom_edge_embedding=False)
        species_src = nn.Embed(self.num_species, self.edge_channels, name="source_embedding")(species[senders])
        species_tgt = nn.Embed(self.num_species, self.edge_channels, name="target_embedding")(species[receivers])
        edge_scalars = jnp.concatenate([basis, species_src.astype(basis.dtype), species_tgt.astype(basis.dtype)], -1)

        message = jnp.concatenate([x[senders], x[receivers]], axis=-1)  # [E, (L+1)^2, 2C]
        message = jnp.einsum("ekj,ejc->ekc", to_edge, message)  # [E, K, 2C] in the edge frame
        group, num_groups = radial_groups(self.lmax, self.mmax)
        radial = RadialProfile((self.edge_channels, self.edge_channels), num_groups * message.shape[-1], name="radial")
        message = message * radial(edge_scalars).reshape(e, num_groups, -1)[:, group, :]

        # the m = 0 block's extra invariant outputs (coefficients with m = 0 are roll-invariant)
        m0, _ = m_positions(self.lmax, self.mmax)
        extra = nn.Dense(h * a + self.hidden_channels, name="m0_extra")(message[:, m0].reshape(e, -1))
        alpha_scalars, gating = extra[:, : h * a], extra[:, h * a :]
        f = SO2Convolution(self.lmax, self.mmax, self.hidden_channels, name="so2_1")(message)

        alpha_scalars = alpha_scalars.reshape(e, h, a)
        if self.attention_renorm:  # one layer norm over the alpha channels, shared by the heads
            alpha_scalars = nn.LayerNorm(name="alpha_norm")(alpha_scalars)
        alpha_dot = self.param("alpha_dot", nn.initializers.glorot_uniform(), (h, a), jnp.float32)
        logits = mlp_attention_logits(alpha_scalars.reshape(e, h * a), alpha_dot)
        alpha = attention_weights(logits, envelope, receivers, num_nodes)  # [E, H]
        self.sow("intermediates", "attention_weights", alpha)

        to_grid, from_grid = grid_constants(self.lmax, self.grid_resolution, f.dtype, truncate=self.mmax)
        value = separable_s2_activation(gating, f, to_grid, from_grid)
        value = SO2Convolution(self.lmax, self.mmax, h * self.value_channels, name="so2_2")(value)  # [E, K, H Cv]
        weight = (alpha * envelope[:, None].astype(alpha.dtype)).astype(value.dtype)
        value = (value.reshape(e, -1, h, self.value_channels) * weight[:, None, :, None]).reshape(e, -1, h * self.value_channels)
        value = jnp.einsum("ekj,ekc->ejc", to_edge, value)  # back to the global frame
        out = jax.ops.segment_sum(value, receivers, num_segments=num_nodes)
        return SO3Linear(self.out_channels, name="proj")(out)


class FeedForwardV2(nn.Module):
    """Feed-forward network (Sec. 4.3; reference ``FeedForwardNetwork``): ``SO3Linear -> act -> SO3Linear``.

    The activation is separable: ``l = 0`` outputs are ``SiLU(Dense(x^(0)))`` of the input's
    scalars; ``l > 0`` come from a point-wise function on the sphere grid, an MLP
    (``grid_mlp``: Dense-SiLU-Dense-SiLU-Dense, the paper's OC20 setting) or SiLU (the separable
    S2 activation).
    """

    hidden_channels: int
    out_channels: int
    grid_resolution: tuple[int, int] | None
    grid_mlp: bool = True

    @nn.compact
    def __call__(self, x):
        lmax = int(round(x.shape[-2] ** 0.5)) - 1
        gating = nn.Dense(self.hidden_channels, name="scalar_linear")(x[..., 0, :])
        y = SO3Linear(self.hidden_channels, name="linear_1")(x)
        to_grid, from_grid = grid_constants(lmax, self.grid_resolution, y.dtype)
        if self.grid_mlp:
            g = jnp.einsum("pk,nkc->npc", to_grid, y)
            g = jax.nn.silu(nn.Dense(self.hidden_channels, use_bias=False, name="grid_1")(g))
            g = jax.nn.silu(nn.Dense(self.hidden_channels, use_bias=False, name="grid_2")(g))
            g = nn.Dense(self.hidden_channels, use_bias=False, name="grid_3")(g)
            y = jnp.einsum("kp,npc->nkc", from_grid, g)
            y = jnp.concatenate([jax.nn.silu(gating)[:, None, :], y[:, 1:, :]], axis=1)
        else:
            y = separable_s2_activation(gating, y, to_grid, from_grid)
        return SO3Linear(self.out_channels, name="linear_2")(y)


class EdgeDegreeEmbeddingV2(nn.Module):
    """Edge-degree embedding (reference ``EdgeDegreeEmbedding``): a radial function of distance and
    species gives ``m = 0`` coefficients of every degree in each edge's frame; rotated to the
    global frame, times the envelope, summed over neighbours and divided by ``avg_num_neighbors``."""

    num_species: int
    lmax: int
    mmax: int
    channels: int
    edge_channels: int
    avg_num_neighbors: float

    @nn.compact
    def __call__(self, basis, species, to_edge, envelope, senders, receivers, num_nodes):
        e = senders.shape[0]
        species_src = nn.Embed(self.num_species, self.edge_channels, name="source_embedding")(species[senders])
        species_tgt = nn.Embed(self.num_species, self.edge_channels, name="target_embedding")(species[receivers])
        edge_scalars = jnp.concatenate([basis, species_src.astype(basis.dtype), species_tgt.astype(basis.dtype)], -1)
        m0_values = RadialProfile((self.edge_channels, self.edge_channels), (self.lmax + 1) * self.channels, name="radial")(
            edge_scalars
        ).reshape(e, self.lmax + 1, self.channels)
        m0, _ = m_positions(self.lmax, self.mmax)
        edge_frame_coeffs = jnp.zeros((e, to_edge.shape[1], self.channels), m0_values.dtype).at[:, m0].set(m0_values)
        coeffs = jnp.einsum("ekj,ekc->ejc", to_edge, edge_frame_coeffs) * envelope[:, None, None].astype(m0_values.dtype)
        return jax.ops.segment_sum(coeffs, receivers, num_segments=num_nodes) / self.avg_num_neighbors


class TransformerBlockV2(nn.Module):
    """``y = x + Attention(SLN(x))``, ``out = y + FFN(SLN(y))`` (Fig. 1(a); SLN: separable layer norm, Sec. 4.4)."""

    num_species: int
    lmax: int
    mmax: int
    channels: int
    attn_hidden_channels: int
    num_heads: int
    attn_alpha_channels: int
    attn_value_channels: int
    ffn_hidden_channels: int
    edge_channels: int
    grid_resolution: tuple[int, int] | None
    attention_renorm: bool
    grid_mlp: bool

    @nn.compact
    def __call__(self, x, basis, species, to_edge, envelope, senders, receivers):
        attn = SO2GraphAttention(
            self.num_species,
            self.lmax,
            self.mmax,
            self.attn_hidden_channels,
            self.num_heads,
            self.attn_alpha_channels,
            self.attn_value_channels,
            self.channels,
            self.edge_channels,
            self.grid_resolution,
            self.attention_renorm,
            name="attention",
        )(SeparableLayerNorm(name="norm_1")(x), basis, species, to_edge, envelope, senders, receivers)
        y = x + attn
        ffn = FeedForwardV2(self.ffn_hidden_channels, self.channels, self.grid_resolution, self.grid_mlp, name="ffn")(
            SeparableLayerNorm(name="norm_2")(y)
        )
        return y + ffn


def spherical_to_irreps(x: jnp.ndarray) -> e3nn.IrrepsArray:
    """[N, (L+1)^2, C] -> ``IrrepsArray`` "C x 0e + C x 1o + C x 2e + ..." (parity (-1)^l)."""
    n, k, c = x.shape
    lmax = int(round(k**0.5)) - 1
    chunks = [jnp.swapaxes(x[:, l * l : (l + 1) ** 2, :], 1, 2).reshape(n, c * (2 * l + 1)) for l in range(lmax + 1)]
    return e3nn.IrrepsArray(e3nn.Irreps([(c, (l, (-1) ** l)) for l in range(lmax + 1)]), jnp.concatenate(chunks, -1))


@register(
    "equiformer_v2",
    small={
        "num_layers": 1,  # every block is the same: one exercises every code path
        "lmax": 2,
        "mmax": 1,
        "sphere_channels": 8,
        "attn_hidden_channels": 8,
        "num_heads": 2,
        "attn_alpha_channels": 4,
        "attn_value_channels": 4,
        "ffn_hidden_channels": 8,
        "edge_channels": 8,
        "num_distance_basis": 16,
        "avg_num_neighbors": 6.0,
    },
)
class EquiformerV2(nn.Module):
    """EquiformerV2 backbone (Liao, Wood, Das, Smidt, ICLR 2024): spherical channels [N, (lmax+1)^2, C].

    Node embeddings are the coefficients of C functions on the sphere up to ``lmax``; they start
    as a species embedding in ``l = 0`` plus the edge-degree embedding (``EdgeDegreeEmbeddingV2``).
    ``num_layers`` pre-norm transformer blocks (``TransformerBlockV2``) follow Equiformer's
    block with the four changes of Sec. 4: eSCN's SO(2) convolutions (``jaxpot.nn.so2``) in the
    edge frame replace the depth-wise tensor products (4.1), attention re-normalisation (4.2),
    separable S2 activation (4.3) and separable layer normalisation (4.4). A final separable
    layer norm; the Potential's energy head reads the ``l = 0`` channels (the reference's energy
    block is a feed-forward network whose ``l = 0`` output is summed); forces are ``-dE/dr`` (the
    reference's OC20 model predicts them with a separate head).

    Edges: Gaussian distance basis (``num_distance_basis`` functions on [0, r_c], width
    ``basis_width_scalar`` spacings) and per-block species embeddings feed the radial
    functions; attention and edge-degree embedding are weighted by the polynomial envelope
    (degree ``envelope_p``), the jaxpot addition that makes the energy smooth at the cutoff (see
    ``jaxpot.nn.graph_attention.attention_weights``).

    Equivariance, as for eSCN (``jaxpot.models.escn``): the rotations and SO(2) convolutions are
    exactly SO(3)-equivariant; the point-wise activations on sphere grids alias (error falling
    with ``grid_resolution``); the SO(2) convolution's complex weights make the model chiral
    (SO(3)-, not O(3)-equivariant), as in the paper.

    Defaults: the paper's OC20 S2EF model (12 blocks, lmax 6, mmax 2, 128 sphere channels, 8 heads
    with 64 alpha and 16 value channels, 64 attention hidden channels, FFN 128, edge channels
    128, 600 Gaussians of width 2 spacings (the reference code's ``GaussianSmearing(0, r_c, 600, 2)``;
    its configs' ``num_distance_basis: 512`` is not used by it), grid MLP in the FFN, attention
    re-normalisation), with the paper's OC20 cutoff 12 Å and average degree 23.4. Sphere grids:
    ``jaxpot.nn.sphere_grid.default_resolution`` (the reference samples 18 points per angle). No dropout or drop-path (the paper
    trains with alpha dropout 0.1 and drop-path 0.05).

    Attributes:
      num_species: size of the species table (set by the Potential).
      cutoff: r_c, Å (set by the Potential).
      num_layers: transformer blocks.
      lmax, mmax: largest degree, largest order kept in the edge frames.
      sphere_channels: C.
      attn_hidden_channels: channels of the first SO(2) convolution's output.
      num_heads, attn_alpha_channels, attn_value_channels: heads; invariant channels per head
        that make the logits; value channels per head.
      ffn_hidden_channels: channels inside the feed-forward network.
      edge_channels: width of the species embeddings and radial MLPs.
      num_distance_basis, basis_width_scalar: Gaussian distance basis.
      avg_num_neighbors: normalisation of the edge-degree embedding.
      attention_renorm: layer norm on the attention scalars (Sec. 4.2).
      grid_mlp: point-wise MLP on the sphere grid in the FFN (else the separable S2 activation).
      grid_resolution: ``(n_theta, n_phi)`` of the sphere grids or None for
        ``jaxpot.nn.sphere_grid.default_resolution(lmax)`` on nodes and
        ``default_resolution(lmax, mmax)`` (fewer longitudes) on the ``|m| <= mmax`` edge frames.
      envelope_p: degree of the polynomial cutoff envelope.

    Returns:
      ``e3nn.IrrepsArray`` [N, "C x 0e + C x 1o + ..."] up to ``lmax``.
    """

    num_species: int = 1
    cutoff: float = 12.0
    num_layers: int = 12
    lmax: int = 6
    mmax: int = 2
    sphere_channels: int = 128
    attn_hidden_channels: int = 64
    num_heads: int = 8
    attn_alpha_channels: int = 64
    attn_value_channels: int = 16
    ffn_hidden_channels: int = 128
    edge_channels: int = 128
    num_distance_basis: int = 600
    basis_width_scalar: float = 2.0
    avg_num_neighbors: float = 23.395238876342773
    attention_renorm: bool = True
    grid_mlp: bool = True
    grid_resolution: tuple[int, int] | None = None
    envelope_p: int = 6

    def _check(self):
        if not 0 <= self.mmax <= self.lmax or self.num_layers < 1 or self.num_heads < 1:
            raise ValueError(
                f"EquiformerV2 needs 0 <= mmax <= lmax, num_layers >= 1, num_heads >= 1; got mmax={self.mmax}, "
                f"lmax={self.lmax}, num_layers={self.num_layers}, num_heads={self.num_heads}"
            )
        if not self.avg_num_neighbors > 0:
            raise ValueError(f"EquiformerV2 avg_num_neighbors must be > 0, got {self.avg_num_neighbors}")

    @nn.compact
    def __call__(self, graph: jraph.GraphsTuple) -> e3nn.IrrepsArray:
        self._check()
        positions = graph.nodes["positions"]
        species = graph.nodes["species"]
        n, c = positions.shape[0], self.sphere_channels
        unit, r = safe_unit(edge_vectors(graph))
        to_edge = wigner_d(edge_frame(unit), self.lmax)[:, truncated_indices(self.lmax, self.mmax), :]
        envelope = polynomial_envelope(r, self.cutoff, self.envelope_p)
        spacing = self.cutoff / max(self.num_distance_basis - 1, 1)
        basis = gaussian_basis(r, self.cutoff, self.num_distance_basis, gamma=0.5 / (self.basis_width_scalar * spacing) ** 2)

        x0 = nn.Embed(self.num_species, c, name="sphere_embedding")(species).astype(positions.dtype)
        x = jnp.zeros((n, num_coefficients(self.lmax), c), positions.dtype).at[:, 0, :].set(x0)
        x = x + EdgeDegreeEmbeddingV2(
            self.num_species, self.lmax, self.mmax, c, self.edge_channels, self.avg_num_neighbors, name="edge_degree_embedding"
        )(basis, species, to_edge, envelope, graph.senders, graph.receivers, n)
        for i in range(self.num_layers):
            x = TransformerBlockV2(
                self.num_species,
                self.lmax,
                self.mmax,
                c,
                self.attn_hidden_channels,
                self.num_heads,
                self.attn_alpha_channels,
                self.attn_value_channels,
                self.ffn_hidden_channels,
                self.edge_channels,
                self.grid_resolution,
                self.attention_renorm,
                self.grid_mlp,
                name=f"block_{i}",
            )(x, basis, species, to_edge, envelope, graph.senders, graph.receivers)
        return spherical_to_irreps(SeparableLayerNorm(name="norm")(x))
