"""MACE: higher-order equivariant message passing.

Batatia, Kovács, Simm, Ortner, Csányi, "MACE: Higher Order Equivariant Message Passing Neural
Networks for Fast and Accurate Force Fields", NeurIPS 2022 (arXiv:2206.07697). The
architecture follows the paper and its reference implementation mace-torch (``ScaleShiftMACE``
with ``RealAgnosticInteractionBlock`` first and ``RealAgnosticResidualInteractionBlock`` after,
the defaults of ``mace_run_train``), with e3nn's normalisations (weights ``N(0, 1)`` divided by
``sqrt(fan_in)``, "component" spherical harmonics and Clebsch-Gordan paths).

Layout: equivariant features are kept as one array per degree ``l``, [N, 2l + 1, C] (channels
last, so every per-channel operation is a vector operation over ``C``); parity is always
``(-1)^l`` (the "Real agnostic" blocks only ever produce those irreps).
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from jaxpot.graph import edge_vectors
from jaxpot.longrange.ewald import layer_ewald
from jaxpot.models.registry import register
from jaxpot.nn import bessel_basis, polynomial_envelope, safe_norm
from jaxpot.nn.edge_sum import edge_sum
from jaxpot.nn.symmetric_contraction import SymmetricContraction

# Edges per chunk of the fused message sum (``jaxpot.nn.edge_sum``).
EDGE_CHUNK = 256


def _silu_2mom(x):
    """SiLU scaled to unit second moment under N(0, 1) inputs (e3nn's ``normalize2mom``)."""
    return jax.nn.silu(x) * SILU_2MOM


def _silu_second_moment() -> float:
    z = np.linspace(-12.0, 12.0, 200001)
    silu = z / (1.0 + np.exp(-z))
    pdf = np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)
    return float(1.0 / np.sqrt(np.sum(silu**2 * pdf) * (z[1] - z[0])))


SILU_2MOM = _silu_second_moment()


def _normal(key, shape, dtype=jnp.float32):
    return jax.random.normal(key, shape, dtype)


@functools.lru_cache(maxsize=None)
def conv_paths(ells_in: tuple[int, ...], max_ell: int) -> tuple[tuple[int, int, int], ...]:
    """Paths ``(l1, l2, l3)`` of the convolution ``x_j (l1) x Y(r_ij) (l2) -> l3``, ``l3 <= max_ell``,
    with natural parity (``l1 + l2 + l3`` even), as mace's ``tp_out_irreps_with_instructions``."""
    paths = []
    for l1 in ells_in:
        for l2 in range(max_ell + 1):
            for l3 in range(abs(l1 - l2), min(l1 + l2, max_ell) + 1):
                if (l1 + l2 + l3) % 2 == 0:
                    paths.append((l1, l2, l3))
    return tuple(sorted(paths, key=lambda p: (p[2], p[0], p[1])))


@functools.lru_cache(maxsize=None)
def _cg(l1: int, l2: int, l3: int) -> np.ndarray:
    """Real Clebsch-Gordan coefficients in e3nn's basis, "component" normalised: [2l1+1, 2l2+1, 2l3+1]."""
    return np.asarray(e3nn.clebsch_gordan(l1, l2, l3), np.float64) * math.sqrt(2 * l3 + 1)


def radial_mlp(x: jnp.ndarray, weights: Sequence[jnp.ndarray]) -> jnp.ndarray:
    """e3nn ``FullyConnectedNet``: ``x @ W / sqrt(fan_in)``, normalised SiLU between layers, no biases.

    ``x`` [E, B] -> [E, weights[-1].shape[1]]. The ``1 / sqrt(fan_in)`` factors are folded into
    the weights by the caller (``MACEInteraction``), so this is plain GEMMs and activations.
    """
    for i, w in enumerate(weights):
        x = jnp.dot(x, w)
        if i < len(weights) - 1:
            x = _silu_2mom(x)
    return x


def mace_messages(nodes, edge_chunk, senders, *, paths, max_ell, channels):
    """Per-edge messages of one MACE interaction (eq. 8-9): pure, for ``edge_sum``.

    ``m_{ij, l3, p} = R_p(r_ij) * sum CG (x_j^{l1} (x) Y^{l2}(r_ij / |r_ij|))`` for every path
    ``p = (l1, l2, l3)``, with R the radial MLP (computed here, chunk by chunk, so that its
    [E, P C] output is never written to memory).

    Args:
      nodes: ``(x, mlp)``: ``x`` dict ``l1 -> [N, 2l1+1, C]`` (after ``linear_up``), ``mlp`` the
        radial-MLP weight matrices (normalisation folded in).
      edge_chunk: ``(radial [Ce, B], sh [Ce, (max_ell + 1)^2])``.
      senders: [Ce].

    Returns:
      tuple over ``l3 = 0..max_ell`` of [Ce, P_l3, 2l3+1, C] (``P_l3`` paths ending in ``l3``).
    """
    x, mlp = nodes
    radial, sh = edge_chunk
    r = radial_mlp(radial, mlp).reshape(radial.shape[0], len(paths), channels)  # [Ce, P, C]
    gathered = {l1: v[senders] for l1, v in x.items()}  # [Ce, 2l1+1, C]
    out: list[list[jnp.ndarray]] = [[] for _ in range(max_ell + 1)]
    for p, (l1, l2, l3) in enumerate(paths):
        y = sh[:, l2 * l2 : (l2 + 1) ** 2]  # [Ce, 2l2+1]
        if l1 == 0:  # CG(0, l, l) is the identity: the message is x_j * Y_l3
            tp = gathered[0][:, 0, None, :] * y[:, :, None]
        else:
            g = jnp.einsum("abc,eb->eac", jnp.asarray(_cg(l1, l2, l3), sh.dtype), y)  # [Ce, 2l1+1, 2l3+1]
            xj = gathered[l1]
            tp = sum(xj[:, a, None, :] * g[:, a, :, None] for a in range(2 * l1 + 1))
        out[l3].append(r[:, p, None, :] * tp)  # [Ce, 2l3+1, C]
    return tuple(jnp.stack(o, axis=1) for o in out)


class SpeciesLinear(nn.Module):
    """mace's ``FullyConnectedTensorProduct(x, one_hot(z))`` for one degree: a per-element
    channel mixing ``x_l @ W[z] / sqrt(C S)``; [N, 2l+1, C] -> [N, 2l+1, C_out]."""

    features: int
    num_species: int

    @nn.compact
    def __call__(self, x, species):
        c = x.shape[-1]
        w = self.param("weight", _normal, (self.num_species, c, self.features)).astype(x.dtype)
        w = w / math.sqrt(c * self.num_species)
        if self.num_species == 1:
            return jnp.dot(x, w[0])
        one_hot = jax.nn.one_hot(species, self.num_species, dtype=x.dtype)  # [N, S]
        xs = x[:, :, None, :] * one_hot[:, None, :, None]  # [N, 2l+1, S, C]
        return jnp.dot(xs.reshape(x.shape[:2] + (-1,)), w.reshape(-1, self.features))


class EquivariantLinear(nn.Module):
    """e3nn ``Linear`` on per-degree features: ``x_l @ W_l / sqrt(C_l)`` for each ``l`` in ``ells``."""

    features: int
    ells: tuple[int, ...]

    @nn.compact
    def __call__(self, x: dict[int, jnp.ndarray]) -> dict[int, jnp.ndarray]:
        out = {}
        for ell in self.ells:
            c = x[ell].shape[-1]
            w = self.param(f"weight_{ell}", _normal, (c, self.features)).astype(x[ell].dtype)
            out[ell] = jnp.dot(x[ell], w / math.sqrt(c))
        return out


class MACEInteraction(nn.Module):
    """Interaction block (eqs. 8-9): linear_up, the convolution ``x_j (x) Y`` weighted by the radial
    MLP, summed over neighbours, linear, divided by ``avg_num_neighbors``. ``first`` is mace's
    ``RealAgnosticInteractionBlock`` (the element-dependent ``skip_tp`` applied to the message),
    otherwise ``RealAgnosticResidualInteractionBlock`` (``skip_tp`` of the input becomes the
    residual ``sc`` added after the product basis).

    Returns ``(A [N, (max_ell+1)^2, C], sc dict or None)``.
    """

    channels: int
    max_ell: int
    radial_hidden: tuple[int, ...]
    avg_num_neighbors: float
    num_species: int
    first: bool
    ells_out: tuple[int, ...]  # degrees of the layer's output features (for sc)

    @nn.compact
    def __call__(self, x, radial, sh, species, senders, receivers):
        c = self.channels
        ells_in = tuple(sorted(x))
        sc = None
        if not self.first:
            sc = {ell: SpeciesLinear(c, self.num_species, name=f"skip_tp_{ell}")(x[ell], species)
                  for ell in self.ells_out if ell in x}
        x = EquivariantLinear(c, ells_in, name="linear_up")(x)
        paths = conv_paths(ells_in, self.max_ell)
        sizes = (radial.shape[-1],) + tuple(self.radial_hidden) + (len(paths) * c,)
        mlp = [
            self.param(f"radial_{i}", _normal, (a, b)).astype(radial.dtype) / math.sqrt(a)
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
        ]
        message_fn = functools.partial(mace_messages, paths=paths, max_ell=self.max_ell, channels=c)
        summed = edge_sum(message_fn, (x, mlp), (radial, sh), senders, receivers, species.shape[0], EDGE_CHUNK)
        a = {}
        for l3, s in enumerate(summed):  # [N, P, 2l3+1, C] -> mix the P*C path channels
            n, p, m, _ = s.shape
            w = self.param(f"linear_{l3}", _normal, (p * c, c)).astype(s.dtype)
            flat = jnp.swapaxes(s, 1, 2).reshape(n, m, p * c)
            a[l3] = jnp.dot(flat, w / (math.sqrt(p * c) * self.avg_num_neighbors))
        if self.first:
            a = {ell: SpeciesLinear(c, self.num_species, name=f"skip_tp_{ell}")(v, species) for ell, v in a.items()}
        return jnp.concatenate([a[ell] for ell in range(self.max_ell + 1)], axis=1), sc


@register(
    "mace",
    small={
        "num_bessel": 6,
        "max_ell": 2,
        "hidden_irreps": "8x0e + 8x1o",
        "correlation": 3,
        "MLP_irreps": "4x0e",
        "radial_MLP": (16, 16),
        "avg_num_neighbors": 8.0,
    },
)
@nn.jit  # one compiled call, also for the (otherwise op-by-op) initialisation
class MACE(nn.Module):
    """MACE backbone (NeurIPS 2022), returning the per-layer energy readouts.

    Per layer ``t`` (Sec. 3 of the paper, eq. numbers of arXiv:2206.07697):
      - eq. 8-9, the atomic basis ``A_i = sum_j R(r_ij) Y(r_ij) (x) W h_j``: radial Bessel basis
        times polynomial envelope -> radial MLP, spherical harmonics up to ``max_ell``, summed over
        neighbours and divided by ``avg_num_neighbors`` (``MACEInteraction``);
      - eq. 10-11, the product basis ``B = sum_nu W_z U A^nu``: symmetric contraction of each
        channel up to ``correlation`` with element-dependent weights
        (``jaxpot.nn.symmetric_contraction``);
      - eq. 12, the message / update ``h^{t+1} = Linear(B) + sc``, with the residual ``sc`` an
        element-dependent linear of ``h^t`` (from the second layer on);
      - eq. 13, readouts: linear for every layer but the last, which is
        ``Linear -> SiLU -> Linear`` through ``MLP_irreps``; the last layer keeps scalars only.

    The energy ``E_i = sum_t readout_t(h_i^t)`` is summed by the energy head: the backbone
    returns the ``num_interactions`` readouts as ``num_interactions x 0e`` features (the head,
    ``readout_sum``, adds them with weight 1 as mace-torch does, plus a learned bias; models
    saved with the earlier learned per-layer factors load with them), followed by the first layer's
    equivariant (non-scalar) features for other heads. Scale/shift and E0s are the
    Potential's (``scale``, ``shift``, ``e0``).

    Defaults are mace-torch's: r_max 5, 8 Bessel functions, p = 5, l_max 3, 2 interactions,
    ``128x0e + 128x1o``, correlation 3, ``16x0e`` readout MLP, radial MLP [64, 64, 64].

    Attributes:
      num_species, cutoff (Å, set by the Potential).
      r_max: radial cutoff of the model (Å); ``None`` uses ``cutoff``; at most ``cutoff``.
      num_bessel, num_polynomial_cutoff, max_ell, num_interactions, hidden_irreps, correlation,
      MLP_irreps, radial_MLP: as in mace-torch.
      avg_num_neighbors: the messages' normalisation; set it to the training set's mean
        neighbour count (``jaxpot.data.average_num_neighbors``) as mace-torch does.
      product_weights: ``"paths"`` (default: one weight per coupling path ``eta`` of eq. 10, as
        mace-torch, so the parameter count is mace-torch's) or ``"independent"`` (one per
        linearly independent coupling: 8 / 12 instead of 23 / 51 at ``nu = 3``); the same
        functions and cost per atom, different training dynamics (``SymmetricContraction``).
        Models saved before this option existed load as ``"independent"``.

    Returns:
      ``e3nn.IrrepsArray`` [N, "T x 0e + C x 1o + ..."].
    """

    num_species: int = 1
    cutoff: float = 5.0
    r_max: float | None = None
    num_bessel: int = 8
    num_polynomial_cutoff: int = 5
    max_ell: int = 3
    num_interactions: int = 2
    hidden_irreps: str = "128x0e + 128x1o"
    correlation: int = 3
    MLP_irreps: str = "16x0e"
    radial_MLP: tuple[int, ...] = (64, 64, 64)
    avg_num_neighbors: float = 10.0
    product_weights: str = "paths"
    ewald: tuple | None = None

    readout_hidden = ()
    readout_sum = True  # the energy head sums the per-layer readouts (see the docstring)

    def _check(self) -> tuple[int, tuple[int, ...], int]:
        hidden = e3nn.Irreps(self.hidden_irreps)
        muls = {mul for mul, _ in hidden}
        ells = tuple(ir.l for _, ir in hidden)
        if len(muls) != 1 or any(ir.p != (-1) ** ir.l for _, ir in hidden) or 0 not in ells or len(set(ells)) != len(ells):
            raise ValueError(
                f"hidden_irreps {self.hidden_irreps!r}: MACE here needs one multiplicity and natural parity "
                f"with scalars, e.g. '128x0e + 128x1o' or '64x0e + 64x1o + 64x2e'"
            )
        mlp = e3nn.Irreps(self.MLP_irreps)
        if any(ir != e3nn.Irrep("0e") for _, ir in mlp) or mlp.num_irreps == 0:
            raise ValueError(f"MLP_irreps {self.MLP_irreps!r} must be scalars, e.g. '16x0e'")
        if self.r_max is not None and self.r_max > self.cutoff:
            raise ValueError(f"r_max {self.r_max} Å exceeds the neighbour-list cutoff {self.cutoff} Å; raise cutoff")
        for name in ("max_ell", "num_interactions", "correlation", "num_bessel"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.product_weights not in ("independent", "paths"):
            raise ValueError(f"product_weights must be 'independent' or 'paths', got {self.product_weights!r}")
        if self.avg_num_neighbors <= 0:
            raise ValueError(f"avg_num_neighbors must be positive, got {self.avg_num_neighbors}")
        if max(ells) > self.max_ell:
            raise ValueError(f"hidden_irreps {self.hidden_irreps!r} has l > max_ell = {self.max_ell}")
        return muls.pop(), tuple(sorted(ells)), mlp.num_irreps

    @nn.compact
    def __call__(self, graph: jraph.GraphsTuple) -> e3nn.IrrepsArray:
        c, hidden_ells, mlp_width = self._check()
        r_max = self.cutoff if self.r_max is None else self.r_max
        species = graph.nodes["species"]
        positions = graph.nodes["positions"]
        dtype = positions.dtype
        vec = edge_vectors(graph)
        r = safe_norm(vec, axis=-1)
        unit = vec / jnp.where(r > 0, r, 1.0)[:, None]  # zero for padded (zero-length) edges
        sh = e3nn.spherical_harmonics(
            list(range(self.max_ell + 1)), e3nn.IrrepsArray("1o", unit), normalize=False, normalization="component"
        ).array  # [E, (max_ell+1)^2]
        radial = bessel_basis(r, r_max, self.num_bessel) * polynomial_envelope(r, r_max, self.num_polynomial_cutoff)[:, None]

        embed = self.param("node_embedding", _normal, (self.num_species, c)).astype(dtype)
        h = {0: (embed[species] / math.sqrt(self.num_species))[:, None, :]}  # [N, 1, C]
        readouts, equivariant = [], None
        for t in range(self.num_interactions):
            last = t == self.num_interactions - 1
            h_in = h[0][:, 0, :]  # [N, C] invariant input of the layer (the Ewald block's)
            ells_out = (0,) if last else hidden_ells
            a, sc = MACEInteraction(
                c, self.max_ell, tuple(self.radial_MLP), self.avg_num_neighbors, self.num_species,
                first=t == 0, ells_out=ells_out, name=f"interaction_{t}",
            )(h, radial, sh, species, graph.senders, graph.receivers)
            product = SymmetricContraction(
                self.max_ell, ells_out, self.correlation, self.num_species, self.product_weights, name=f"product_{t}"
            )
            b = product(a, species)
            h = EquivariantLinear(c, ells_out, name=f"product_linear_{t}")(b)
            if sc is not None:
                h = {ell: h[ell] + sc[ell] for ell in ells_out}
            if self.ewald is not None:  # beside the interaction, from the same input scalars
                h = {**h, 0: h[0] + layer_ewald(self.ewald, h_in, graph, t)[:, None, :]}
            scalars = h[0][:, 0, :]  # [N, C]
            if not last:
                w = self.param(f"readout_{t}", _normal, (c, 1)).astype(dtype)
                readouts.append(jnp.dot(scalars, w / math.sqrt(c))[:, 0])
                if equivariant is None:
                    equivariant = {ell: v for ell, v in h.items() if ell > 0}
            else:
                w1 = self.param(f"readout_{t}_1", _normal, (c, mlp_width)).astype(dtype)
                w2 = self.param(f"readout_{t}_2", _normal, (mlp_width, 1)).astype(dtype)
                hidden = _silu_2mom(jnp.dot(scalars, w1 / math.sqrt(c)))
                readouts.append(jnp.dot(hidden, w2 / math.sqrt(mlp_width))[:, 0])
        energies = jnp.stack(readouts, axis=-1)  # [N, T]
        irreps = f"{self.num_interactions}x0e"
        arrays = [energies]
        for ell, v in sorted((equivariant or {}).items()):
            irreps += f" + {v.shape[-1]}x{e3nn.Irrep(ell, (-1) ** ell)}"
            arrays.append(jnp.swapaxes(v, 1, 2).reshape(v.shape[0], -1))  # [N, C, 2l+1], e3nn's layout
        return e3nn.IrrepsArray(irreps, jnp.concatenate(arrays, axis=-1))
