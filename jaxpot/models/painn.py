"""PaiNN: polarizable atom interaction neural network.

Schütt, Unke, Gastegger, "Equivariant message passing for the prediction of tensorial
properties and molecular spectra", ICML 2021 (arXiv:2102.03150).
"""

from __future__ import annotations

import functools

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from jaxpot.graph import edge_vectors
from jaxpot.longrange.ewald import layer_ewald
from jaxpot.models.registry import register
from jaxpot.nn import safe_norm, smooth_norm
from jaxpot.nn.dense import DenseParams, split_dense
from jaxpot.nn.edge_sum import edge_sum

# Edges per chunk in the message sums (``jaxpot.nn.edge_sum``), by bytes per float. Measured
# on 2-core CPUs (F = 128): 256 is slower (more scan steps); a chunk's temporaries should stay
# in cache, and larger chunks grow the temporary buffer (XLA:CPU allocates it afresh every
# call; above glibc's 32 MiB mmap threshold it is page-faulted every call, ~0.5 ms/MB).
# float32, 1024 against 512 (Sapphire Rapids, energy + forces): si216 35 / 39 ms, si512 77 /
# 84 ms, si64 equal; and a training batch of 10 ethanol molecules (768 edges) is then one
# chunk, whose loss gradient is 25 % faster (``edge_sum``). float64, 512 against 1024: si216
# 90 / 95 ms, si512 equal; one chunk of 1792 edges (si64) is 1.6x slower than two.
EDGE_CHUNK = {4: 1024, 8: 512}

# Xavier/Glorot-uniform kernels, as the PaiNN reference implementation (schnetpack) has them.
# flax's default (LeCun normal, variance 1/fan_in) draws the filter network [R, 3F·T] about 5x
# larger, which starts training from energies ~15x off and ended 5-10% less accurate after 10
# epochs of the rMD17-ethanol protocol (benchmarks/accuracy.py).
KERNEL_INIT = nn.initializers.glorot_uniform()
Dense = functools.partial(nn.Dense, kernel_init=KERNEL_INIT)
# Element embeddings N(0, 1), as the reference's torch.nn.Embedding; flax's default scales them
# by 1/sqrt(F) (std 0.09 at F = 128), which starts every scalar channel ~11x smaller.
EMBEDDING_INIT = nn.initializers.normal(stddev=1.0)


def _radial_parts(r, cutoff, num_rbf):
    """Shared pieces of ``radial_features`` and its JVP (same expressions as
    ``nn.bessel_basis(r) * sqrt(cutoff / 2)`` and ``nn.cosine_cutoff``)."""
    k = jnp.arange(1, num_rbf + 1, dtype=r.dtype)
    nonzero = (r > 0)[:, None]
    safe_r = jnp.where(nonzero, r[:, None], 1.0)
    kx = k * jnp.pi * safe_r / cutoff  # [E, R]
    sin_kx = jnp.sin(kx)
    scale = (jnp.sqrt(2.0 / cutoff) * jnp.sqrt(cutoff / 2.0)).astype(r.dtype)
    rbf = jnp.where(nonzero, sin_kx / safe_r, k * jnp.pi / cutoff) * scale
    inside = r < cutoff
    x = jnp.pi * r / cutoff
    envelope = jnp.where(inside, 0.5 * (jnp.cos(x) + 1.0), 0.0).astype(r.dtype)
    return k, nonzero, safe_r, kx, sin_kx, scale, rbf, inside, x, envelope


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def radial_features(r, cutoff: float, num_rbf: int):
    """[E] distances -> [E, R + 1] ``[rbf * f_cut, f_cut]``: Bessel basis ``sin(n pi r / r_c) / r``
    (n = 1..R, limit ``n pi / r_c`` at r = 0) times the cosine cutoff, and the cutoff itself.

    The values are those of ``nn.bessel_basis`` and ``nn.cosine_cutoff``. The derivative is
    written by hand (``custom_jvp``): autodiff of the basis keeps about six [E, R] arrays
    alive for the backward pass (sines, cosines, masks, quotients), this keeps one,
    ``d features / dr``, and is itself differentiable, so Hessians stay exact.
    """
    *_, rbf, _, _, envelope = _radial_parts(r, cutoff, num_rbf)
    return jnp.concatenate([rbf * envelope[:, None], envelope[:, None]], axis=-1)


@radial_features.defjvp
def _radial_features_jvp(cutoff, num_rbf, primals, tangents):
    (r,), (dr,) = primals, tangents
    k, nonzero, safe_r, kx, sin_kx, scale, rbf, inside, x, envelope = _radial_parts(r, cutoff, num_rbf)
    # d/dr sin(k r) / r = (k cos(k r) - sin(k r) / r) / r; 0 in the r -> 0 limit.
    d_rbf = jnp.where(nonzero, (k * jnp.pi / cutoff * jnp.cos(kx) - sin_kx / safe_r) / safe_r, 0.0) * scale
    d_env = jnp.where(inside, -0.5 * jnp.pi / cutoff * jnp.sin(x), 0.0).astype(r.dtype)
    features = jnp.concatenate([rbf * envelope[:, None], envelope[:, None]], axis=-1)
    d_features = jnp.concatenate([d_rbf * envelope[:, None] + rbf * d_env[:, None], d_env[:, None]], axis=-1)
    return features, d_features * dr[:, None]


def painn_messages(nodes, edge_chunk, senders):
    """PaiNN's per-edge messages for a chunk of edges (eqs. 7-8); pure, for ``edge_sum``.

    Args:
      nodes: ``(phi, v, filter_kernel)``: ``phi`` = ``(phi_s, phi_vv, phi_vs)``, each [N, F];
        ``v`` [N, 3, F] (``None`` in the first block, where the vectors are still zero: that
        term is skipped); the filter weights ``(K_s, K_vv, K_vs)``, each [R + 1, F] with the
        bias as the last row.
      edge_chunk: ``(radial, unit)``: ``radial`` [C, R + 1] = ``[rbf * f_cut, f_cut]`` and
        ``unit`` [C, 3] = r_ij / |r_ij|.
      senders: [C].

    Returns:
      ``(Δs [C, F], Δv [C, 3, F])``. ``W = (rbf @ K + b) * f_cut`` is computed as
      ``[rbf * f_cut, f_cut] @ [K; b]``: one matmul, and its transpose gives the gradient of
      the envelope too, so no separate [C, F] reduction is needed for it. The three parts
      are gathered and multiplied apart rather than as one [C, 3F] array split afterwards:
      the transpose of that split is a concatenation of the three [C, F] cotangents, a copy
      of every per-edge cotangent, which XLA:CPU does not fuse (15 % of a float64 energy +
      forces call on 3BPA or Si64, 8 % of a training step on ethanol).
    """
    phi, v, kernel = nodes
    radial, unit = edge_chunk
    ds, dvv, dvs = (p[senders] * jnp.dot(radial, k) for p, k in zip(phi, kernel))  # 3 x [C, F]
    dv = dvs[:, None, :] * unit[:, :, None]  # [C, 3, F]
    if v is not None:
        dv = dv + v[senders] * dvv[:, None, :]
    return ds, dv


class PaiNNMessage(nn.Module):
    """Message block (eqs. 7-8, Fig. 2b).

    ``Δs_i = sum_j phi_s(s_j) * W_s(r_ij)``;
    ``Δv_i = sum_j v_j * phi_vv(s_j) * W_vv(r_ij) + phi_vs(s_j) * W_vs(r_ij) * r_ij / |r_ij|``,
    with ``phi`` = Dense(F, silu) -> Dense(3F) and ``W`` = Dense(3F)(rbf) * f_cut.
    Vector features are [N, 3, F] (Cartesian axis before channels). The sums over edges run
    chunk by chunk (``jaxpot.nn.edge_sum``), so no [E, 3, F] tensor is ever materialised.
    """

    features: int

    @nn.compact
    def __call__(self, s, v, radial, unit, filter_kernel, senders, receivers):
        """``v=None`` stands for zero vectors (the first block) and skips their term."""
        f = self.features
        h = jax.nn.silu(Dense(f, name="phi_0")(s))
        phi = split_dense(h, *DenseParams(3 * f, kernel_init=KERNEL_INIT, name="phi_1")(f), parts=3)
        nodes, edges = (phi, v, tuple(jnp.split(filter_kernel, 3, axis=-1))), (radial, unit)
        chunk = EDGE_CHUNK.get(jnp.dtype(s.dtype).itemsize, 512)
        ds, dv = edge_sum(painn_messages, nodes, edges, senders, receivers, s.shape[0], chunk)
        return s + ds, dv if v is None else v + dv


class PaiNNUpdate(nn.Module):
    """Update block (eqs. 9-10, Fig. 2c).

    ``Δv_i = a_vv(s_i, |V v_i|) * U v_i``; ``Δs_i = a_ss + a_sv * <U v_i, V v_i>``, with
    ``a`` = Dense(F, silu) -> Dense(3F) on ``[s_i, |V v_i|]`` and ``U``, ``V`` linear maps of the
    channels (no bias, so they are equivariant). ``|V v|`` is ``sqrt(|V v|^2 + eps)``, smooth
    where the vectors vanish by symmetry.
    """

    features: int
    norm_eps: float = 1e-8

    @nn.compact
    def __call__(self, s, v):
        f = self.features
        uv = DenseParams(2 * f, use_bias=False, kernel_init=KERNEL_INIT, name="UV")(f)
        u, vv = split_dense(v, *uv, parts=2)  # [N, 3, F] each
        vv_norm = smooth_norm(vv, axis=-2, eps=self.norm_eps)  # smooth at v = 0 (symmetric sites)
        a = Dense(f, name="a_0")(jnp.concatenate([s, vv_norm], axis=-1))
        a_1 = DenseParams(3 * f, kernel_init=KERNEL_INIT, name="a_1")(f)
        a_vv, a_sv, a_ss = split_dense(jax.nn.silu(a), *a_1, parts=3)
        dv = a_vv[:, None, :] * u
        ds = a_ss + a_sv * jnp.sum(u * vv, axis=-2)
        return s + ds, v + dv


@register("painn", small={"features": 16, "num_interactions": 2, "num_rbf": 8})
class PaiNN(nn.Module):
    """PaiNN backbone: scalar and vector atom features ``F x 0e + F x 1o``.

    Scalars start from an element embedding, vectors at zero (Sec. 4); ``num_interactions``
    message + update blocks with residual updates; radial basis ``sin(n pi r / r_cut) / r``,
    n = 1..20, times a cosine cutoff (Sec. 4, "filter"). Filters of every block come from one
    dense layer on the radial basis, as in the reference implementation (the paper's
    ``W`` per block, computed together).

    Defaults are the paper's: F = 128, 3 blocks, 20 radial functions, 5 Å cutoff.

    Attributes:
      num_species: size of the species table (set by the Potential).
      cutoff: Å.
      features: F.
      num_interactions: number of message/update pairs.
      num_rbf: radial functions.

    Returns:
      ``e3nn.IrrepsArray`` [N, "F x 0e + F x 1o"] (vectors laid out channel-major, xyz inner).
    """

    num_species: int = 1
    cutoff: float = 5.0
    features: int = 128
    num_interactions: int = 3
    num_rbf: int = 20
    ewald: tuple | None = None

    @nn.compact
    def __call__(self, graph: jraph.GraphsTuple) -> e3nn.IrrepsArray:
        f = self.features
        positions = graph.nodes["positions"]
        vec = edge_vectors(graph)
        r = safe_norm(vec, axis=-1)
        unit = vec / jnp.where(r > 0, r, 1.0)[:, None]
        kernel, bias = DenseParams(self.num_interactions * 3 * f, kernel_init=KERNEL_INIT, name="filters")(self.num_rbf)
        dtype = jnp.promote_types(r.dtype, kernel.dtype)  # as nn.Dense
        radial = radial_features(r, self.cutoff, self.num_rbf).astype(dtype)  # [E, R + 1]
        filter_kernel = jnp.concatenate([kernel, bias[None]], axis=0).astype(dtype)  # [R + 1, T * 3F]
        filter_kernels = jnp.split(filter_kernel, self.num_interactions, axis=-1)

        s = nn.Embed(self.num_species, f, embedding_init=EMBEDDING_INIT, name="embedding")(
            graph.nodes["species"]
        ).astype(positions.dtype)
        v = None  # zero vectors (Sec. 4), known at trace time
        for t in range(self.num_interactions):
            long_range = layer_ewald(self.ewald, s, graph, t) if self.ewald is not None else None
            s, v = PaiNNMessage(f, name=f"message_{t}")(
                s, v, radial, unit, filter_kernels[t], graph.senders, graph.receivers
            )
            s, v = PaiNNUpdate(f, name=f"update_{t}")(s, v)
            if long_range is not None:  # beside the interaction, from the same input scalars
                s = s + long_range
        if v is None:  # num_interactions == 0
            v = jnp.zeros((s.shape[0], 3, f), dtype=s.dtype)
        vectors = jnp.swapaxes(v, 1, 2).reshape(s.shape[0], 3 * f)  # [N, F, 3] -> [N, 3F]
        return e3nn.IrrepsArray(f"{f}x0e + {f}x1o", jnp.concatenate([s, vectors], axis=-1))
