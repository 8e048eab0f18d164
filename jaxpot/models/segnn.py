"""SEGNN: steerable E(3)-equivariant graph neural network.

Brandstetter, Hesselink, van der Pol, Bekkers, Welling, "Geometric and physical quantities
improve E(3) equivariant message passing", ICLR 2022 (arXiv:2110.02905).
"""

from __future__ import annotations

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from jaxpot.graph import edge_vectors
from jaxpot.models.registry import register
from jaxpot.nn import polynomial_envelope, safe_norm, scatter_sum
from jaxpot.nn.gate import gate_irreps


def balanced_irreps(features: int, l_max: int) -> e3nn.Irreps:
    """About ``features / (l_max + 1)`` dimensions per order l: ``n_l x l`` with
    ``n_l = max(1, round(features / ((l_max + 1)(2l + 1))))`` and parity ``(-1)^l`` (the
    reference code's "balanced" hidden irreps)."""
    return e3nn.Irreps(
        [(max(1, round(features / ((l_max + 1) * (2 * l + 1)))), (l, (-1) ** l)) for l in range(l_max + 1)]
    )


def smooth_steerable_mean(sh: jnp.ndarray, envelope: jnp.ndarray, receivers: jnp.ndarray, num_nodes: int) -> jnp.ndarray:
    """Node attributes ``a_i``: the mean of the edge attributes ``Y(r_ij)`` over the neighbours,
    made smooth at the cutoff.

    ``a_i = (Y_0 + sum_j u(r_ij) Y(r_ij)) / (1 + sum_j u(r_ij))``, where ``Y_0 = (1, 0, ..., 0)``
    is the atom's own contribution (the harmonics of a zero vector). The paper's mean
    ``sum_j Y(r_ij) / |N(i)|`` jumps when a neighbour crosses the cutoff; with the envelope
    ``u`` each neighbour fades in, the l = 0 component is 1 as in the paper, and an isolated
    atom gets ``Y_0``.

    Args:
      sh: [E, D] component-normalised harmonics (l = 0 entry is 1).
      envelope: [E] u(r), 0 at and beyond the cutoff.
    """
    total = scatter_sum(sh * envelope[:, None], receivers, num_nodes)
    weight = 1.0 + scatter_sum(envelope, receivers, num_nodes)
    own = jnp.zeros(sh.shape[-1], sh.dtype).at[0].set(1.0)
    return (own + total) / weight[:, None]


class SteerableLinear(nn.Module):
    """Steerable linear layer ``W_a(h) = h (x)_W a``: Clebsch-Gordan tensor product of the
    features with a steerable attribute, every path weighted and mixed (Sec. 3, "steerable
    MLPs"); written as ``Linear(h x a)``, with biases on the 0e outputs."""

    irreps_out: e3nn.Irreps

    @nn.compact
    def __call__(self, h: e3nn.IrrepsArray, a: e3nn.IrrepsArray) -> e3nn.IrrepsArray:
        irreps_out = e3nn.Irreps(self.irreps_out)
        # regrouped input (one block per irrep): fewer paths to trace and compile
        tp = e3nn.tensor_product(h.regroup(), a, filter_ir_out=irreps_out)
        return e3nn.flax.Linear(irreps_out, biases=True, force_irreps_out=True, name="linear")(tp)


class SteerableMLP(nn.Module):
    """Steerable MLP (Eq. 9-12): ``num_layers`` steerable linear layers conditioned on the
    attribute ``a``, each but (unless ``gate_last``) the last followed by the swish gate
    (SiLU on scalars, sigmoid gates on l > 0, Weiler et al. 2018)."""

    irreps_out: e3nn.Irreps
    num_layers: int = 2
    gate_last: bool = True

    @nn.compact
    def __call__(self, h: e3nn.IrrepsArray, a: e3nn.IrrepsArray) -> e3nn.IrrepsArray:
        irreps_out = e3nn.Irreps(self.irreps_out)
        for k in range(self.num_layers):
            if k < self.num_layers - 1 or self.gate_last:
                h = SteerableLinear(gate_irreps(irreps_out), name=f"layer_{k}")(h, a)
                h = e3nn.gate(h, even_act=jax.nn.silu, even_gate_act=jax.nn.sigmoid)
            else:
                h = SteerableLinear(irreps_out, name=f"layer_{k}")(h, a)
        return h


class SEGNNLayer(nn.Module):
    """One message-passing layer.

    ``m_ij = u(r_ij) phi_m(f_i, f_j, |r_ij|^2; a_ij)`` (two gated steerable layers),
    ``m_i = sum_j m_ij / avg_num_neighbors``, ``f_i <- f_i + phi_f(f_i, m_i; a_i)`` (gated
    layer, then a linear one). ``u`` is the cutoff envelope, which makes the messages vanish
    smoothly at the cutoff (the paper uses a hard radius graph).
    """

    irreps_hidden: e3nn.Irreps
    avg_num_neighbors: float

    @nn.compact
    def __call__(self, f, node_attr, edge_attr, r2, envelope, senders, receivers):
        irreps_hidden = e3nn.Irreps(self.irreps_hidden)
        inputs = e3nn.concatenate([f[receivers], f[senders], e3nn.IrrepsArray("0e", r2[:, None])])
        m = SteerableMLP(irreps_hidden, 2, gate_last=True, name="message")(inputs, edge_attr)
        m = m * envelope[:, None].astype(m.dtype)
        m_i = e3nn.IrrepsArray(m.irreps, scatter_sum(m.array, receivers, f.shape[0]))
        m_i = m_i / jnp.asarray(self.avg_num_neighbors, m_i.dtype)
        update = SteerableMLP(irreps_hidden, 2, gate_last=False, name="update")(e3nn.concatenate([f, m_i]), node_attr)
        return f + update


@register(
    "segnn",
    small={"features": 12, "l_max_hidden": 2, "l_max_attr": 1, "num_interactions": 1, "avg_num_neighbors": 6.0},
)
class SEGNN(nn.Module):
    """SEGNN backbone: steerable node features ``n_l x l`` (l = 0..l_max_hidden, parity (-1)^l).

    Follows the paper (Sec. 3):

    * attributes: edge ``a_ij = Y(r_ij / |r_ij|)``, spherical harmonics up to ``l_max_attr``;
      node ``a_i`` = their mean over the neighbours (smooth at the cutoff, see
      ``smooth_steerable_mean``);
    * embedding: a steerable linear layer of the one-hot species conditioned on ``a_i``;
    * ``num_interactions`` layers of non-linear steerable messages and updates with residual
      connections (``SEGNNLayer``); messages see ``|r_ij|^2`` (Å^2) and ``a_ij``, updates ``a_i``.

    For energies and forces the messages are multiplied by the polynomial cutoff envelope
    (``p = 6``), so that energies are smooth in the positions; molecular properties come from
    the same node features through a head (``jaxpot.heads``; the paper's QM9 models pool the
    scalars).

    Defaults are the paper's QM9 model (Appendix, reference code's QM9 command): 128
    features, 7 layers, ``l_max_hidden = 2``, ``l_max_attr = 3`` (it uses a 2 Å radius
    graph; jaxpot sets the cutoff per Potential).

    Attributes:
      num_species: size of the species table (set by the Potential).
      cutoff: Å.
      features: total size of the hidden irreps (see ``balanced_irreps``).
      l_max_hidden: highest order of the node features.
      l_max_attr: highest order of the edge and node attributes.
      num_interactions: message-passing layers.
      avg_num_neighbors: normalisation of the message sums (1: the paper's plain sum).

    Returns:
      ``e3nn.IrrepsArray`` [N, balanced_irreps(features, l_max_hidden)].
    """

    num_species: int = 1
    cutoff: float = 5.0
    features: int = 128
    l_max_hidden: int = 2
    l_max_attr: int = 3
    num_interactions: int = 7
    avg_num_neighbors: float = 1.0

    @nn.compact
    def __call__(self, graph: jraph.GraphsTuple) -> e3nn.IrrepsArray:
        if self.l_max_hidden < 0 or self.l_max_attr < 0 or self.features < 1 or self.num_interactions < 1:
            raise ValueError(
                "SEGNN needs l_max_hidden >= 0, l_max_attr >= 0, features >= 1 and num_interactions >= 1; got "
                f"{self.l_max_hidden}, {self.l_max_attr}, {self.features}, {self.num_interactions}"
            )
        if not self.avg_num_neighbors > 0:
            raise ValueError(f"SEGNN avg_num_neighbors must be > 0, got {self.avg_num_neighbors}")
        positions = graph.nodes["positions"]
        num_nodes = positions.shape[0]
        vec = edge_vectors(graph)
        r = safe_norm(vec, axis=-1)
        unit = vec / jnp.where(r > 0, r, 1.0)[:, None]  # zero for padded (zero-length) edges
        irreps_attr = e3nn.Irreps.spherical_harmonics(self.l_max_attr)
        edge_attr = e3nn.spherical_harmonics(irreps_attr, unit, normalize=False, normalization="component")
        envelope = polynomial_envelope(r, self.cutoff, 6)
        node_attr = e3nn.IrrepsArray(
            irreps_attr, smooth_steerable_mean(edge_attr.array, envelope, graph.receivers, num_nodes)
        )

        irreps_hidden = balanced_irreps(self.features, self.l_max_hidden)
        one_hot = jax.nn.one_hot(graph.nodes["species"], self.num_species, dtype=positions.dtype)
        f = SteerableLinear(irreps_hidden, name="embedding")(
            e3nn.IrrepsArray(f"{self.num_species}x0e", one_hot), node_attr
        )
        for t in range(self.num_interactions):
            f = SEGNNLayer(irreps_hidden, self.avg_num_neighbors, name=f"layer_{t}")(
                f, node_attr, edge_attr, r * r, envelope, graph.senders, graph.receivers
            )
        return f
