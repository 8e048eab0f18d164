"""NequIP: neural equivariant interatomic potentials.

Batzner, Musaelian, Sun, Geiger, Mailoa, Kornbluth, Molinari, Smidt, Kozinsky, "E(3)-equivariant
graph neural networks for data-efficient and accurate interatomic potentials", Nat. Commun. 13,
2453 (2022), arXiv:2101.03164.
"""

from __future__ import annotations

import functools

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from jaxpot.graph import edge_vectors
from jaxpot.models.registry import register
from jaxpot.nn import bessel_basis, polynomial_envelope, safe_norm
from jaxpot.nn.edge_sum import edge_sum
from jaxpot.nn.gate import gate_irreps
from jaxpot.nn.radial_mlp import RadialMLPParams, radial_mlp

# Edges per chunk in the convolution sums (``jaxpot.nn.edge_sum``). A chunk's tensor-product
# temporaries are ~3k floats per edge and tensor (F = 32, l_max = 2, parity). Measured on the
# shared 2-core development CPU (busy, float32 energy+forces, min of 8): si64 245 ms at 64-128
# edges per chunk, 275 ms at 256-512, 669 ms unchunked; 3bpa 118 ms at 128, 146 ms at 512.
EDGE_CHUNK = 128


def hidden_irreps(features: int, l_max: int, parity: bool) -> e3nn.Irreps:
    """``F x l`` for l = 0..l_max, both parities if ``parity`` (NequIP's ``feature_irreps_hidden``)."""
    parities = (1, -1) if parity else (1,)
    return e3nn.Irreps([(features, (l, p)) for p in parities for l in range(l_max + 1)]).sort().irreps


def reachable(target: e3nn.Irreps, irreps_in: e3nn.Irreps, irreps_sh: e3nn.Irreps) -> e3nn.Irreps:
    """The irreps of ``target`` that some path ``irreps_in x irreps_sh`` can produce."""
    out = [
        (mul, ir)
        for mul, ir in target
        if any(ir in ir1 * ir2 for _, ir1 in irreps_in for _, ir2 in irreps_sh)
    ]
    return e3nn.Irreps(out)


def convolution_messages(nodes, edge_chunk, senders, *, irreps_in, irreps_sh, irreps_out):
    """Per-edge messages of a chunk (Eq. 3-5), pure, for ``edge_sum``.

    ``m_ij = (R(r_ij) * (h_j x Y(r_ij)))``: every path ``l_j x l_f -> l_o`` of the tensor
    product of the sender's features with the edge's spherical harmonics, channel by channel
    ("uvu"), weighted per path and channel by the radial MLP.

    Args:
      nodes: ``(h [N, irreps_in.dim], kernels)``, kernels of the radial MLP.
      edge_chunk: ``(sh [C, irreps_sh.dim], embedding [C, B])``, the radial embedding
        ``B(r) u(r)``.
      senders: [C].

    Returns:
      [C, dim] messages, irreps ``tensor_product(irreps_in, irreps_sh)`` filtered to ``irreps_out``.
    """
    h, kernels = nodes
    sh, embedding = edge_chunk
    x = e3nn.IrrepsArray(irreps_in, h[senders])
    tp = e3nn.tensor_product(x, e3nn.IrrepsArray(irreps_sh, sh), filter_ir_out=irreps_out)
    weights = radial_mlp(embedding, kernels)  # [C, paths x channels]
    return (tp * weights.astype(tp.dtype)).array


class Convolution(nn.Module):
    """Interaction block: convolution and self-connection (Eq. 3-5, Fig. 1).

    ``h' = Linear_2( sum_j m_ij / sqrt(avg_num_neighbors) ) + SC(h, Z)``, with
    ``m_ij = R(r_ij) (Linear_1(h)_j x Y(r_ij))`` (see ``convolution_messages``); ``SC`` is the
    self-connection, a linear map of ``h`` with weights per species (NequIP's tensor product
    with the one-hot species). Output irreps: ``irreps_out`` (the gate's input).
    """

    irreps_out: e3nn.Irreps
    radial_features: tuple[int, ...]
    avg_num_neighbors: float
    num_species: int
    self_connection: bool

    @nn.compact
    def __call__(self, h, species, sh, embedding, senders, receivers):
        irreps_out = e3nn.Irreps(self.irreps_out)
        x = e3nn.flax.Linear(h.irreps, name="linear_1")(h)
        irreps_msg = e3nn.tensor_product(
            e3nn.zeros(x.irreps, ()), e3nn.zeros(sh.irreps, ()), filter_ir_out=irreps_out
        ).irreps
        kernels = RadialMLPParams(tuple(self.radial_features) + (irreps_msg.num_irreps,), name="radial_mlp")(
            embedding.shape[-1]
        )
        message_fn = functools.partial(
            convolution_messages, irreps_in=x.irreps, irreps_sh=sh.irreps, irreps_out=irreps_out
        )
        summed = edge_sum(
            message_fn, (x.array, kernels), (sh.array, embedding), senders, receivers, h.shape[0], EDGE_CHUNK
        )
        summed = e3nn.IrrepsArray(irreps_msg, summed) / jnp.sqrt(self.avg_num_neighbors).astype(x.dtype)
        out = e3nn.flax.Linear(irreps_out, force_irreps_out=True, name="linear_2")(summed)
        if self.self_connection:
            out = out + e3nn.flax.Linear(
                irreps_out, num_indexed_weights=self.num_species, force_irreps_out=True, name="self_connection"
            )(species, h)
        return out


@register(
    "nequip",
    small={
        "features": 4,
        "l_max": 2,
        "num_interactions": 2,
        "num_bessel": 4,
        "radial_mlp_depth": 1,
        "radial_mlp_width": 8,
        "avg_num_neighbors": 6.0,
    },
)
class NequIP(nn.Module):
    """NequIP backbone: equivariant convolutions on ``F x l`` features, l = 0..l_max.

    Follows the paper (Methods, "Convolution" and "Interaction block"):

    * edges: spherical harmonics ``Y(r_ij / |r_ij|)`` up to ``l_max`` (component normalised)
      and the radial embedding ``B(r) u(r)``: ``num_bessel`` Bessel functions
      ``sqrt(2/r_c) sin(n pi r / r_c) / r`` (fixed frequencies, as the reference code's
      default) times the polynomial cutoff of degree ``p`` (DimeNet's envelope);
    * convolution (Eq. 3-5): ``R(r) = MLP(B(r) u(r))`` (SiLU, no biases), one weight per
      tensor-product path and channel; tensor product of the neighbour's features with
      ``Y``, summed over neighbours and divided by ``sqrt(avg_num_neighbors)``;
    * self-interaction (linear layers before and after the convolution) and self-connection
      (species-dependent linear map; none in the first layer, so an isolated atom's features
      depend on its species only);
    * gated non-linearity (Weiler et al. 2018): even scalars SiLU, odd scalars tanh,
      gates SiLU (even) / tanh (odd).

    Species enter through a learned embedding to ``F x 0e``. Features of layer ``t`` are
    ``F x l`` for every l <= l_max and both parities (``parity``), restricted to what the
    tensor products can reach; the last layer keeps only ``F x 0e`` when
    ``scalar_output`` (as the reference code, whose readout uses scalars only; set it to
    False for heads that need vectors or tensors).

    Defaults are the reference implementation's (nequip ``NequIPGNNModel``): 4 layers,
    F = 32, l_max = 1, parity, 8 Bessel functions, p = 6, radial MLP 2 x 64 (the paper
    compares l_max = 0..3). One difference from recent nequip versions: their
    self-connection is a tensor product with the learned ``F x 0e`` type embedding (F times
    more weights); here, as in the paper, it is linear in the features with one weight set per
    species (a tensor product with the one-hot species).

    Attributes:
      num_species: size of the species table (set by the Potential).
      cutoff: r_c, Å.
      features: F, channels per irrep.
      l_max: highest rotation order of features and spherical harmonics.
      parity: keep odd-parity copies of every l (``F x 0o``, ``F x 1e``, ...).
      num_interactions: number of interaction blocks.
      num_bessel: radial basis size.
      polynomial_p: ``p`` of the polynomial cutoff.
      radial_mlp_depth, radial_mlp_width: hidden layers of the radial MLP.
      avg_num_neighbors: normalisation of the neighbour sums (from
        ``jaxpot.data.statistics``; 1 is the paper's plain sum).
      scalar_output: the last layer outputs ``F x 0e`` only.

    Returns:
      ``e3nn.IrrepsArray`` [N, irreps]: ``F x 0e`` (``scalar_output``) or the hidden irreps.
    """

    num_species: int = 1
    cutoff: float = 5.0
    features: int = 32
    l_max: int = 1
    parity: bool = True
    num_interactions: int = 4
    num_bessel: int = 8
    polynomial_p: int = 6
    radial_mlp_depth: int = 2
    radial_mlp_width: int = 64
    avg_num_neighbors: float = 1.0
    scalar_output: bool = True

    def _check(self):
        if self.l_max < 0 or self.features < 1 or self.num_interactions < 1:
            raise ValueError(
                f"NequIP needs l_max >= 0, features >= 1 and num_interactions >= 1; got l_max={self.l_max}, "
                f"features={self.features}, num_interactions={self.num_interactions}"
            )
        if not self.avg_num_neighbors > 0:
            raise ValueError(f"NequIP avg_num_neighbors must be > 0, got {self.avg_num_neighbors}")

    @nn.compact
    def __call__(self, graph: jraph.GraphsTuple) -> e3nn.IrrepsArray:
        self._check()
        positions = graph.nodes["positions"]
        species = graph.nodes["species"]
        vec = edge_vectors(graph)
        r = safe_norm(vec, axis=-1)
        unit = vec / jnp.where(r > 0, r, 1.0)[:, None]  # zero for padded (zero-length) edges
        irreps_sh = e3nn.Irreps.spherical_harmonics(self.l_max)
        sh = e3nn.spherical_harmonics(irreps_sh, unit, normalize=False, normalization="component")
        embedding = bessel_basis(r, self.cutoff, self.num_bessel) * polynomial_envelope(
            r, self.cutoff, self.polynomial_p
        )[:, None]  # [E, B]

        h = nn.Embed(self.num_species, self.features, name="embedding")(species).astype(positions.dtype)
        h = e3nn.IrrepsArray(f"{self.features}x0e", h)
        hidden = hidden_irreps(self.features, self.l_max, self.parity)
        radial = (self.radial_mlp_width,) * self.radial_mlp_depth
        for t in range(self.num_interactions):
            last = t == self.num_interactions - 1
            target = e3nn.Irreps(f"{self.features}x0e") if (last and self.scalar_output) else hidden
            irreps_out = reachable(target, h.irreps, irreps_sh)
            h = Convolution(
                gate_irreps(irreps_out),
                radial,
                self.avg_num_neighbors,
                self.num_species,
                self_connection=t > 0,
                name=f"interaction_{t}",
            )(h, species, sh, embedding, graph.senders, graph.receivers)
            h = e3nn.gate(h, even_act=jax.nn.silu, odd_act=jnp.tanh, even_gate_act=jax.nn.silu, odd_gate_act=jnp.tanh)
        return h
