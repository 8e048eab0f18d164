"""Equiformer: equivariant graph attention transformer.

Liao and Smidt, "Equiformer: Equivariant Graph Attention Transformer for 3D Atomistic Graphs",
ICLR 2023, arXiv:2206.11990 (Sec. 3, Fig. 1; hyperparameters of the MD17 models, App. and the
authors' ``graph_attention_transformer_nonlinear_exp_l2_md17``).
"""

from __future__ import annotations

from typing import Sequence

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from jaxpot.graph import edge_vectors
from jaxpot.models.registry import register
from jaxpot.nn import polynomial_envelope, safe_norm
from jaxpot.nn.exp_normal import exp_normal_basis
from jaxpot.nn.gate import gate_irreps
from jaxpot.nn.graph_attention import aggregate, attention_weights, head_irreps, head_of_channel, mlp_attention_logits
from jaxpot.nn.layer_norm import EquivariantLayerNorm


def depthwise_irreps(irreps_in: e3nn.Irreps, irreps_sh: e3nn.Irreps, irreps_target: e3nn.Irreps) -> e3nn.Irreps:
    """Output irreps of ``depthwise_tensor_product``: every path ``l_in x l_sh -> l_out`` whose
    ``l_out`` is a type of ``irreps_target`` or 0e (Equiformer keeps 0e for the attention)."""
    keep = {ir for _, ir in e3nn.Irreps(irreps_target)} | {e3nn.Irrep("0e")}
    return e3nn.tensor_product(e3nn.zeros(irreps_in, ()), e3nn.zeros(irreps_sh, ()), filter_ir_out=list(keep)).irreps


def depthwise_tensor_product(
    x: e3nn.IrrepsArray, sh: e3nn.IrrepsArray, weights: jnp.ndarray, irreps_target: e3nn.Irreps
) -> e3nn.IrrepsArray:
    """Depth-wise tensor product (Sec. 3.2): each channel of ``x`` times ``Y(r_ij)``, one weight per path and channel.

    ``x`` [E, irreps_in] and ``sh`` [E, irreps_sh]; ``weights`` [E, P] (edge-dependent, from the
    radial MLP) or [P] (learned constants), ``P = depthwise_irreps(...).num_irreps``. The
    channels are not mixed (the "uvu" tensor product); a linear layer after it mixes them, which
    makes the pair a separable tensor product.
    """
    keep = {ir for _, ir in e3nn.Irreps(irreps_target)} | {e3nn.Irrep("0e")}
    tp = e3nn.tensor_product(x, sh, filter_ir_out=list(keep))
    return tp * jnp.broadcast_to(weights.astype(tp.dtype), tp.shape[:-1] + (tp.irreps.num_irreps,))


class RadialProfile(nn.Module):
    """Radial MLP: [E, B] basis -> [E, num_out] tensor-product weights.

    Each hidden layer is Dense -> LayerNorm -> SiLU (the reference code's ``RadialProfile``); the
    last is Dense with a bias.
    """

    hidden: Sequence[int]
    num_out: int

    @nn.compact
    def __call__(self, basis: jnp.ndarray) -> jnp.ndarray:
        h = basis
        for i, width in enumerate(self.hidden):
            h = nn.Dense(width, name=f"dense_{i}")(h)
            h = nn.LayerNorm(name=f"norm_{i}")(h)
            h = jax.nn.silu(h)
        return nn.Dense(self.num_out, name="out")(h)


def swish_gate(x: e3nn.IrrepsArray) -> e3nn.IrrepsArray:
    """Equiformer's gate: SiLU on even scalars, sigmoid gates for the l > 0 irreps (odd scalars:
    e3nn's odd activation / tanh gates, so that parity is kept)."""
    return e3nn.gate(x, even_act=jax.nn.silu, even_gate_act=jax.nn.sigmoid)


class GraphAttention(nn.Module):
    """Equivariant graph attention (Sec. 3.3, Fig. 1(b)).

    For every edge ``j -> i``:

    * ``x_ij = Linear_dst(x_i) + Linear_src(x_j)``;
    * ``f_ij = DTP(x_ij, Y(r_ij); R(r_ij))``, a depth-wise tensor product weighted by the radial
      MLP ``R``;
    * MLP attention: ``z_ij = a^T LeakyReLU(Linear(f_ij)^(0))`` per head (only the invariant
      part of ``f_ij`` reaches the 0e output of the linear layer);
    * non-linear message (``nonlinear_message``): ``v_ij = Linear(DTP(Gate(Linear(f_ij)),
      Y(r_ij)))``, the second depth-wise tensor product with learned constant weights (as the
      reference code); otherwise ``v_ij = Linear(f_ij)`` (linear message);
    * ``y_i = Linear(concat_h sum_j alpha_ij^h u(r_ij) v_ij^h)`` with the envelope-weighted
      softmax of ``jaxpot.nn.graph_attention.attention_weights`` (the paper's plain softmax is
      discontinuous at the cutoff).

    Attributes:
      irreps_head: irreps of one head's value (channels per head).
      num_heads: H.
      radial_hidden: hidden widths of the radial MLP.
      nonlinear_message: gate and second tensor product on the value path.
    """

    irreps_head: str
    num_heads: int
    radial_hidden: Sequence[int]
    nonlinear_message: bool = True

    @nn.compact
    def __call__(self, x, sh, basis, envelope, senders, receivers):
        irreps_in = x.irreps
        heads = head_irreps(self.irreps_head, self.num_heads)
        num_alpha = heads.count("0e")  # K per head x H: the invariant channels that make the logits
        src = e3nn.flax.Linear(irreps_in, biases=True, force_irreps_out=True, name="merge_src")(x)
        dst = e3nn.flax.Linear(irreps_in, force_irreps_out=True, name="merge_dst")(x)
        message = e3nn.IrrepsArray(irreps_in, src.array[senders] + dst.array[receivers])

        target = irreps_in if self.nonlinear_message else heads
        irreps_f = depthwise_irreps(irreps_in, sh.irreps, target)
        weights = RadialProfile(tuple(self.radial_hidden), irreps_f.num_irreps, name="radial")(basis)
        f = depthwise_tensor_product(message, sh, weights, target)
        if self.nonlinear_message:
            scalars = e3nn.flax.Linear(f"{num_alpha}x0e", biases=True, name="alpha_linear")(f).array
            value = e3nn.flax.Linear(gate_irreps(irreps_in), biases=True, force_irreps_out=True, name="value_linear")(f)
            value = swish_gate(value)
            irreps_v = depthwise_irreps(value.irreps, sh.irreps, heads)
            value_weights = self.param("value_tp_weights", nn.initializers.normal(1.0), (irreps_v.num_irreps,), jnp.float32)
            value = depthwise_tensor_product(value, sh, value_weights, heads)
            value = e3nn.flax.Linear(heads, force_irreps_out=True, name="value_proj")(value)
        else:
            both = e3nn.flax.Linear(e3nn.Irreps(f"{num_alpha}x0e") + heads, biases=True, force_irreps_out=True, name="linear")(f)
            scalars = both.array[:, :num_alpha]
            value = e3nn.IrrepsArray(heads, both.array[:, num_alpha:])
        alpha_dot = self.param("alpha_dot", nn.initializers.glorot_uniform(), (self.num_heads, num_alpha // self.num_heads), jnp.float32)
        logits = mlp_attention_logits(scalars, alpha_dot)
        alpha = attention_weights(logits, envelope, receivers, x.shape[0])
        self.sow("intermediates", "attention_weights", alpha)
        out = aggregate(value, alpha, envelope, receivers, x.shape[0], head_of_channel(heads, self.num_heads))
        return e3nn.flax.Linear(irreps_in, biases=True, force_irreps_out=True, name="proj")(out)


class FeedForward(nn.Module):
    """Equivariant feed-forward network (Sec. 3.3, Fig. 1(a)): Linear -> Gate -> Linear.

    Attributes:
      irreps_mid: irreps of the hidden layer (after the gate).
      irreps_out: output irreps.
    """

    irreps_mid: str
    irreps_out: str

    @nn.compact
    def __call__(self, x: e3nn.IrrepsArray) -> e3nn.IrrepsArray:
        h = e3nn.flax.Linear(gate_irreps(self.irreps_mid), biases=True, force_irreps_out=True, name="linear_1")(x)
        h = swish_gate(h)
        return e3nn.flax.Linear(self.irreps_out, biases=True, force_irreps_out=True, name="linear_2")(h)


class TransformerBlock(nn.Module):
    """Pre-norm transformer block (Fig. 1(a)): ``y = x + GA(LN(x))``; ``out = S(y) + FFN(LN(y))``.

    ``S`` is the identity, or a linear map when the block changes irreps (the last block).
    """

    irreps_out: str
    irreps_head: str
    num_heads: int
    irreps_mlp_mid: str
    radial_hidden: Sequence[int]
    nonlinear_message: bool
    eps: float

    @nn.compact
    def __call__(self, x, sh, basis, envelope, senders, receivers):
        attn = GraphAttention(
            self.irreps_head, self.num_heads, self.radial_hidden, self.nonlinear_message, name="attention"
        )(EquivariantLayerNorm(self.eps, name="norm_1")(x), sh, basis, envelope, senders, receivers)
        y = x + attn
        ffn = FeedForward(self.irreps_mlp_mid, self.irreps_out, name="ffn")(EquivariantLayerNorm(self.eps, name="norm_2")(y))
        if e3nn.Irreps(self.irreps_out) != y.irreps:
            y = e3nn.flax.Linear(self.irreps_out, biases=True, force_irreps_out=True, name="shortcut")(y)
        return y + ffn


class EdgeDegreeEmbedding(nn.Module):
    """Edge-degree embedding (Sec. 3.3 "Embedding"): ``sum_j u(r_ij) Linear(DTP(c, Y(r_ij); R(r_ij))) / sqrt(d)``.

    ``c`` are learned constant scalars (the reference code's linear map of a constant 1), so the
    sum encodes each atom's neighbourhood geometry in every irrep of the node features before the
    first block. ``d`` is the average number of neighbours. The envelope ``u`` makes the sum
    vanish smoothly as a neighbour leaves (the radial MLP has biases and layer norms, so its
    output does not vanish at the cutoff by itself).
    """

    irreps_out: str
    radial_hidden: Sequence[int]
    avg_num_neighbors: float

    @nn.compact
    def __call__(self, sh, basis, envelope, receivers, num_nodes):
        irreps_out = e3nn.Irreps(self.irreps_out)
        num_scalars = irreps_out.count("0e")
        c = self.param("constant", nn.initializers.normal(1.0), (num_scalars,), jnp.float32).astype(basis.dtype)
        x = e3nn.IrrepsArray(f"{num_scalars}x0e", jnp.broadcast_to(c, (basis.shape[0], num_scalars)))
        irreps_f = depthwise_irreps(x.irreps, sh.irreps, irreps_out)
        weights = RadialProfile(tuple(self.radial_hidden), irreps_f.num_irreps, name="radial")(basis)
        f = depthwise_tensor_product(x, sh, weights, irreps_out)
        f = e3nn.flax.Linear(irreps_out, force_irreps_out=True, name="proj")(f)
        f = f * envelope[:, None].astype(f.dtype)
        summed = jax.ops.segment_sum(f.array, receivers, num_segments=num_nodes)
        return e3nn.IrrepsArray(irreps_out, summed / jnp.sqrt(self.avg_num_neighbors).astype(summed.dtype))


@register(
    "equiformer",
    small={  # l <= 1 (the irreps code is generic in l): 2.6x less compile time than l <= 2
        "irreps_node": "8x0e+4x1o",
        "num_blocks": 2,  # the last block differs (maps to irreps_feature)
        "irreps_head": "4x0e+2x1o",
        "num_heads": 2,
        "irreps_mlp_mid": "8x0e+4x1o",
        "irreps_feature": "16x0e",
        "sh_l_max": 1,
        "num_basis": 8,
        "radial_mlp_width": 8,
        "radial_mlp_depth": 1,
        "avg_num_neighbors": 6.0,
    },
)
class Equiformer(nn.Module):
    """Equiformer backbone (Liao and Smidt, ICLR 2023), MLP attention with non-linear messages.

    * Embedding (Sec. 3.3, Fig. 1(a)): a learned species embedding of the 0e channels plus the
      edge-degree embedding (``EdgeDegreeEmbedding``) of every irrep.
    * ``num_blocks`` pre-norm transformer blocks (``TransformerBlock``): equivariant layer norm
      (``jaxpot.nn.layer_norm``), equivariant graph attention (``GraphAttention``) with the
      depth-wise tensor products of ``Y(r_ij)`` up to ``sh_l_max``, a feed-forward network with a
      gate, residual connections. The last block's feed-forward network maps to
      ``irreps_feature`` (invariant scalars).
    * A final layer norm. The paper's output head (Linear -> SiLU -> Linear to one scalar per atom,
      summed) is the Potential's energy head with ``readout_hidden = (512,)``; forces are -dE/dx
      by automatic differentiation, as the paper's MD17 models.

    Edges: the exponential-normal radial basis (``jaxpot.nn.exp_normal``, the paper's MD17
    setting, with its cosine cutoff) feeds the radial MLPs; the attention and the edge-degree
    embedding are weighted by the polynomial envelope ``u(r)`` of degree ``envelope_p`` (the
    jaxpot addition that makes the energy smooth at the cutoff; see
    ``jaxpot.nn.graph_attention.attention_weights``).

    Defaults: the paper's MD17 model with l_max = 2 (6 blocks, ``128x0e+64x1o+32x2e``, 4 heads of
    ``32x0e+16x1o+8x2e``, FFN ``384x0e+192x1o+96x2e``, 512 output scalars, 32 basis functions,
    radial MLP 64-64, average degree 15.58 from QM9 at 5 Å, attention dropout 0). Differences:
    irreps carry their O(3) parity (1o vectors, as the spherical harmonics), so the model is
    E(3)-equivariant; the paper's main MD17 model labels every irrep even ("SE(3)"), which also
    allows the cross-product paths ``1 x 1 -> 1`` that parity forbids here (add ``1e`` channels to
    ``irreps_node``/``irreps_head`` to get them back). No dropout (inference-style
    deterministic model; the MD17 models use none). Layer-norm epsilon 1e-3 (paper 1e-5): at a
    symmetric site (every atom of diamond) the l > 0 features vanish and the norm
    ``x / sqrt(mean x^2 + eps)`` has curvature ~1/eps there, which amplified rounding noise into
    spurious forces of 2e-7 eV/Å with 1e-5 (1e-14 with 1e-3; l <= 2 small model; the suite requires
    1e-10); features with mean square >> 1e-3 are normalised as before. Message passing is not
    chunked: every per-edge tensor is materialised.

    Attributes:
      num_species: size of the species table (set by the Potential).
      cutoff: r_c, Å.
      irreps_node: irreps of the node features (sorted, each type once, with 0e).
      num_blocks: transformer blocks.
      irreps_head: irreps of one attention head's values (needs 0e: they make the logits).
      num_heads: attention heads.
      irreps_mlp_mid: hidden irreps of the feed-forward networks.
      irreps_feature: output irreps of the last block (0e only in the paper).
      sh_l_max: highest degree of the edge spherical harmonics.
      num_basis: size of the exponential-normal radial basis.
      radial_mlp_width, radial_mlp_depth: hidden layers of the radial MLPs.
      nonlinear_message: gate and second depth-wise tensor product on the value path.
      avg_num_neighbors: normalisation of the edge-degree embedding.
      envelope_p: degree of the polynomial cutoff envelope on the attention.
      layer_norm_eps: epsilon of the equivariant layer norms (see above).

    Returns:
      ``e3nn.IrrepsArray`` [N, irreps_feature].
    """

    num_species: int = 1
    cutoff: float = 5.0
    irreps_node: str = "128x0e+64x1o+32x2e"
    num_blocks: int = 6
    irreps_head: str = "32x0e+16x1o+8x2e"
    num_heads: int = 4
    irreps_mlp_mid: str = "384x0e+192x1o+96x2e"
    irreps_feature: str = "512x0e"
    sh_l_max: int = 2
    num_basis: int = 32
    radial_mlp_width: int = 64
    radial_mlp_depth: int = 2
    nonlinear_message: bool = True
    avg_num_neighbors: float = 15.57930850982666
    envelope_p: int = 6
    layer_norm_eps: float = 1e-3

    readout_hidden = (512,)  # the paper's output head: Linear(512) -> SiLU -> Linear(1)

    def _check(self):
        node, head = e3nn.Irreps(self.irreps_node), e3nn.Irreps(self.irreps_head)
        if node.regroup() != node or node.count("0e") == 0:
            raise ValueError(
                f"Equiformer irreps_node must be sorted, each irrep once, with 0e channels; got {self.irreps_node!r} "
                f"(e.g. {str(node.regroup())!r})"
            )
        if head.regroup() != head or head.count("0e") == 0:
            raise ValueError(f"Equiformer irreps_head must be sorted, each irrep once, with 0e channels; got {self.irreps_head!r}")
        if self.num_blocks < 1 or self.num_heads < 1 or self.sh_l_max < 0:
            raise ValueError(
                f"Equiformer needs num_blocks >= 1, num_heads >= 1, sh_l_max >= 0; got {self.num_blocks}, "
                f"{self.num_heads}, {self.sh_l_max}"
            )
        if not self.avg_num_neighbors > 0:
            raise ValueError(f"Equiformer avg_num_neighbors must be > 0, got {self.avg_num_neighbors}")

    @nn.compact
    def __call__(self, graph: jraph.GraphsTuple) -> e3nn.IrrepsArray:
        self._check()
        positions = graph.nodes["positions"]
        species = graph.nodes["species"]
        num_nodes = positions.shape[0]
        vec = edge_vectors(graph)
        r = safe_norm(vec, axis=-1)
        unit = vec / jnp.where(r > 0, r, 1.0)[:, None]  # zero for padded (zero-length) edges
        sh = e3nn.spherical_harmonics(
            e3nn.Irreps.spherical_harmonics(self.sh_l_max), unit, normalize=False, normalization="component"
        )
        basis = exp_normal_basis(r, self.cutoff, self.num_basis)
        envelope = polynomial_envelope(r, self.cutoff, self.envelope_p)
        radial = (self.radial_mlp_width,) * self.radial_mlp_depth

        irreps_node = e3nn.Irreps(self.irreps_node)
        num_scalars = irreps_node.count("0e")  # the 0e block comes first (sorted irreps)
        atom = nn.Embed(self.num_species, num_scalars, name="embedding")(species).astype(positions.dtype)
        atom = jnp.concatenate([atom, jnp.zeros((num_nodes, irreps_node.dim - num_scalars), atom.dtype)], axis=-1)
        h = EdgeDegreeEmbedding(self.irreps_node, radial, self.avg_num_neighbors, name="edge_degree_embedding")(
            sh, basis, envelope, graph.receivers, num_nodes
        )
        h = e3nn.IrrepsArray(irreps_node, atom) + h
        for t in range(self.num_blocks):
            last = t == self.num_blocks - 1
            h = TransformerBlock(
                self.irreps_feature if last else self.irreps_node,
                self.irreps_head,
                self.num_heads,
                self.irreps_mlp_mid,
                radial,
                self.nonlinear_message,
                self.layer_norm_eps,
                name=f"block_{t}",
            )(h, sh, basis, envelope, graph.senders, graph.receivers)
        return EquivariantLayerNorm(self.layer_norm_eps, name="norm")(h)
