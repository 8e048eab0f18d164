"""SchNet: continuous-filter convolutions on interatomic distances.

Schütt, Kindermans, Sauceda, Chmiela, Tkatchenko, Müller, NeurIPS 2017 (arXiv:1706.08566), and
Schütt, Sauceda, Kindermans, Tkatchenko, Müller, J. Chem. Phys. 148, 241722 (2018).
"""

from __future__ import annotations

import e3nn_jax as e3nn
import flax.linen as nn
import jraph

from jaxpot.graph import edge_vectors
from jaxpot.longrange.ewald import layer_ewald
from jaxpot.models.registry import register
from jaxpot.nn import cosine_cutoff, gaussian_basis, safe_norm, shifted_softplus
from jaxpot.nn.dense import DenseParams, dense
from jaxpot.nn.edge_sum import edge_sum


def cfconv_messages(nodes, edge_chunk, senders):
    """CFConv messages ``x_j * W(r_ij)`` for a chunk of edges; pure, for ``edge_sum``.

    Args:
      nodes: ``(x, (k0, b0, k1, b1))``: node features [N, F] and the filter network's weights.
      edge_chunk: ``(rbf, envelope)``: [C, n_rbf] radial basis and [C] cosine cutoff.
      senders: [C].

    Returns:
      [C, F]: ``x[senders] * ssp(ssp(rbf @ k0 + b0) @ k1 + b1) * f_cut``.
    """
    x, (k0, b0, k1, b1) = nodes
    rbf, envelope = edge_chunk
    w = shifted_softplus(dense(rbf, k0, b0))
    w = shifted_softplus(dense(w, k1, b1)) * envelope[:, None]
    return x[senders] * w


# Edges per chunk in the convolution sums (``jaxpot.nn.edge_sum``). SchNet's per-edge work
# is its filter network (two dense layers with shifted softplus), which the chunked backward
# pass recomputes; large chunks keep small systems in one chunk, where nothing is
# recomputed (si64: 1792 edges). Measured on the development CPU: 2048-4096 are best.
EDGE_CHUNK = 4096


class CFConv(nn.Module):
    """Continuous-filter convolution ``x_i' = sum_j x_j * W(r_ij)`` (JCP 2018, Sec. II.B).

    The filter-generating network is two dense layers with shifted softplus on the radial
    basis (Sec. II.C), multiplied by the cosine cutoff so that the filter vanishes smoothly
    at the cutoff (Sec. II.C, "cosine cutoff" of the periodic extension). Filters and messages
    are computed a chunk of edges at a time (``jaxpot.nn.edge_sum``), never for all edges.
    """

    features: int

    @nn.compact
    def __call__(self, x, rbf, envelope, senders, receivers):
        k0, b0 = DenseParams(self.features, name="filter_0")(rbf.shape[-1])
        k1, b1 = DenseParams(self.features, name="filter_1")(self.features)
        return edge_sum(
            cfconv_messages, (x, (k0, b0, k1, b1)), (rbf, envelope), senders, receivers, x.shape[0], EDGE_CHUNK
        )


class SchNetInteraction(nn.Module):
    """Interaction block (JCP 2018, Fig. 1): atom-wise -> cfconv -> atom-wise, ssp -> atom-wise."""

    features: int

    @nn.compact
    def __call__(self, x, rbf, envelope, senders, receivers):
        y = nn.Dense(self.features, use_bias=False, name="in2f")(x)
        y = CFConv(self.features, name="cfconv")(y, rbf, envelope, senders, receivers)
        y = shifted_softplus(nn.Dense(self.features, name="f2out_0")(y))
        return nn.Dense(self.features, name="f2out_1")(y)


# Element embeddings N(0, 1), as torch.nn.Embedding in the reference implementations (schnetpack,
# and PyG's SchNet, which the Ewald paper builds on). flax's default draws them with standard
# deviation 1/sqrt(F), 0.18 at F = 32: every layer that acts on them without a bias (the Ewald
# block's residual layers) then starts several times smaller.
EMBEDDING_INIT = nn.initializers.normal(stddev=1.0)


@register("schnet", small={"features": 16, "num_interactions": 2, "num_rbf": 12})
class SchNet(nn.Module):
    """SchNet backbone: invariant atom features ``features x 0e``.

    ``x_i^0 = embedding(Z_i)``; ``x_i^{t+1} = x_i^t + v_i^t`` with ``v^t`` an interaction block
    (residual update, JCP 2018 Sec. II.A); distances expanded in Gaussians
    ``exp(-gamma (r - mu_k)^2)`` (Sec. II.C) with the paper's 0.1 Å spacing and gamma = 10 Å^-2
    over [0, cutoff].

    Defaults follow the papers: 64 features, 3 interaction blocks (MD17 setting of the
    NeurIPS paper; QM9 used 6), Gaussian spacing 0.1 Å, cosine cutoff at 5 Å.

    Attributes:
      num_species: size of the species table (set by the Potential).
      cutoff: Å.
      features: atom-wise feature width F.
      num_interactions: T.
      num_rbf: Gaussians on [0, cutoff]; ``None`` means one every 0.1 Å.
      gamma: Gaussian width parameter in Å^-2.

    Returns:
      ``e3nn.IrrepsArray`` [N, "F x 0e"].
    """

    readout_activation = "ssp"  # the paper's atom-wise output layers use shifted softplus

    num_species: int = 1
    cutoff: float = 5.0
    features: int = 64
    num_interactions: int = 3
    num_rbf: int | None = None
    gamma: float = 10.0
    ewald: tuple | None = None

    @nn.compact
    def __call__(self, graph: jraph.GraphsTuple) -> e3nn.IrrepsArray:
        positions = graph.nodes["positions"]
        r = safe_norm(edge_vectors(graph), axis=-1)
        n_rbf = self.num_rbf or int(round(self.cutoff / 0.1)) + 1
        rbf = gaussian_basis(r, self.cutoff, n_rbf, gamma=self.gamma)
        envelope = cosine_cutoff(r, self.cutoff)
        x = nn.Embed(self.num_species, self.features, embedding_init=EMBEDDING_INIT, name="embedding")(
            graph.nodes["species"])
        x = x.astype(positions.dtype)
        for t in range(self.num_interactions):
            update = SchNetInteraction(self.features, name=f"interaction_{t}")(
                x, rbf, envelope, graph.senders, graph.receivers
            )
            if self.ewald is not None:  # beside the interaction, from the same input
                update = update + layer_ewald(self.ewald, x, graph, t)
            x = x + update
        return e3nn.IrrepsArray(f"{self.features}x0e", x)
