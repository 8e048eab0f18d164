"""Readout heads: node features (``e3nn.IrrepsArray``) -> per-atom and per-graph properties.

``EnergyHead`` (atomic energies), ``DipoleHead`` (charges constrained to the total charge, and
the dipole), ``PolarizabilityHead`` (symmetric rank-2 tensor); ``AtomisticModel`` joins a
backbone and its heads. Every head works for every backbone: it uses the 0e features always
and the 1o / 2e features where the backbone has them.
"""

from __future__ import annotations

import functools
from typing import Sequence

import e3nn_jax as e3nn
import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxpot.nn import MLP, graph_sum, node_graph_index


class EnergyHead(nn.Module):
    """Atomic energies from the invariant (0e) part of the node features.

    An MLP ``hidden -> 1`` on the scalars, as SchNet (JCP 2018, Sec. II.A: atom-wise layers
    then sum) and PaiNN (Sec. 4: two-layer output network) do; per-species shift and scale
    are applied by the ``Potential``.

    Returns: [N] atomic energies (model units, before scale and E0).
    """

    hidden: Sequence[int] = (64,)
    activation: str = "silu"
    sum_scalars: bool = False

    @nn.compact
    def __call__(self, features: e3nn.IrrepsArray) -> jnp.ndarray:
        scalars = features.filter(keep="0e").array
        if scalars.shape[-1] == 0:
            raise ValueError(f"EnergyHead needs 0e features; the backbone gave {features.irreps}")
        if self.sum_scalars:
            # The backbone's scalars are already atomic energies (MACE's per-layer readouts,
            # eq. 13: E_i = sum_t E_i^t); a learned weight per term would rescale the forces at
            # initialisation and add a redundant factor that Adam moves at its own pace.
            bias = self.param("bias", nn.initializers.zeros_init(), (), jnp.float32)
            return jnp.sum(scalars, axis=-1) + bias.astype(scalars.dtype)
        return MLP(tuple(self.hidden) + (1,), activation=self.activation, name="mlp")(scalars)[:, 0]


# ----------------------------------------------------------------------------------------
# Tensor heads: charges and dipoles, polarizabilities (PaiNN, ICML 2021, Sec. 4, eqs. 13-14)
# ----------------------------------------------------------------------------------------


def centred_positions(positions: jnp.ndarray, n_node: jnp.ndarray) -> jnp.ndarray:
    """[N, 3] positions relative to the centroid (geometric centre) of their graph, Å.

    The dipole of a charged molecule depends on the origin; jaxpot takes the centroid, which
    needs no masses and makes every head output invariant under translations.
    """
    gid = node_graph_index(n_node, positions.shape[0])
    count = jnp.maximum(n_node, 1).astype(positions.dtype)[:, None]
    centroid = graph_sum(positions, n_node) / count  # [G, 3]
    return positions - centroid[gid]


def constrain_charges(charges: jnp.ndarray, n_node: jnp.ndarray, total: jnp.ndarray) -> jnp.ndarray:
    """Shift every graph's [N] charges evenly so they sum to ``total`` [G] (e).

    ``q_i - (sum_j q_j - Q) / n`` (the charge correction of PaiNN's and SchNetPack's dipole
    output); graphs without nodes are left alone.
    """
    gid = node_graph_index(n_node, charges.shape[0])
    excess = (graph_sum(charges, n_node) - total) / jnp.maximum(n_node, 1).astype(charges.dtype)
    return charges - excess[gid]


def total_charge(graph, dtype) -> jnp.ndarray:
    """[G] total charge of every graph (e): ``graph.globals["charge"]`` if present, else 0."""
    charge = graph.globals.get("charge") if isinstance(graph.globals, dict) else None
    if charge is None:
        return jnp.zeros(graph.n_node.shape[0], dtype)
    return jnp.reshape(charge, (graph.n_node.shape[0],)).astype(dtype)


@functools.lru_cache(maxsize=None)
def _traceless_basis() -> np.ndarray:
    """[3, 3, 5]: maps e3nn's 2e components to symmetric traceless 3x3 matrices."""
    basis = e3nn.reduced_tensor_product_basis("ij=ji", i="1o").filter(keep="2e").array
    return np.asarray(basis, dtype=np.float64)


def irrep2e_to_matrix(x: jnp.ndarray) -> jnp.ndarray:
    """[..., 5] components of a 2e irrep -> [..., 3, 3] symmetric traceless matrices.

    Uses e3nn's own basis, so ``R M R^T`` of the result equals the matrix of the 2e
    components rotated by e3nn's Wigner D (the ``transform_by_matrix`` convention).
    """
    return jnp.einsum("ijk,...k->...ij", jnp.asarray(_traceless_basis(), x.dtype), x)


def symmetric_outer(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """[..., 3] x [..., 3] -> [..., 3, 3] ``a ⊗ b + b ⊗ a``."""
    ab = a[..., :, None] * b[..., None, :]
    return ab + jnp.swapaxes(ab, -1, -2)


def _channels(features: e3nn.IrrepsArray, irrep: str) -> jnp.ndarray | None:
    """[N, C, 2l+1] the ``irrep`` channels of ``features``, or None if it has none."""
    part = features.filter(keep=irrep)
    if part.irreps.dim == 0:
        return None
    return part.mul_to_axis().array


class GatedTensorReadout(nn.Module):
    """One equivariant output per atom from C channels of one irrep, gated by the scalars.

    ``y_i = sum_h a_h(s_i) (W x_i)_h`` with ``W`` a linear map of the channels (no bias, so it
    commutes with rotations) and ``a`` an MLP of the invariant features: a gated equivariant
    block of PaiNN (Sec. 4, Fig. 3) with one output.

    Input: scalars [N, F], tensors [N, C, d]. Returns: [N, d].
    """

    hidden: int = 32
    activation: str = "silu"

    @nn.compact
    def __call__(self, scalars: jnp.ndarray, tensors: jnp.ndarray) -> jnp.ndarray:
        mixed = nn.Dense(self.hidden, use_bias=False, name="mix")(jnp.swapaxes(tensors, -1, -2))  # [N, d, H]
        gates = MLP((self.hidden, self.hidden), activation=self.activation, name="gate")(scalars)  # [N, H]
        return jnp.einsum("ndh,nh->nd", mixed, gates.astype(mixed.dtype))


def _scalars(features: e3nn.IrrepsArray, head: str) -> jnp.ndarray:
    scalars = features.filter(keep="0e").array
    if scalars.shape[-1] == 0:
        raise ValueError(f"{head} needs 0e features; the backbone gave {features.irreps}")
    return scalars


class DipoleHead(nn.Module):
    """Partial charges and the molecular dipole (PaiNN, ICML 2021, eq. 13).

    ``mu = sum_i q_i (r_i - r_c) + mu_i``: charges ``q_i`` from the 0e features (an MLP),
    shifted so that every graph's charges sum to its total charge (``graph.globals["charge"]``,
    default 0); atomic dipoles ``mu_i`` from the 1o features (``GatedTensorReadout``) when the
    backbone has them (PaiNN), none for scalar-only backbones (SchNet: charges only).
    ``r_c`` is the graph's centroid (``centred_positions``): for neutral molecules the dipole
    does not depend on it; for ions this is the convention.

    Attributes:
      hidden: widths of the charge MLP's hidden layers; the first is also the gate width.
      activation: of the MLPs.
      atomic_dipoles: use the 1o features when present.

    Returns: ``{"charges": [N] e, "dipole": [G, 3] e·Å}``.
    """

    hidden: Sequence[int] = (64,)
    activation: str = "silu"
    atomic_dipoles: bool = True

    @nn.compact
    def __call__(self, features: e3nn.IrrepsArray, graph) -> dict:
        scalars = _scalars(features, "DipoleHead")
        positions = graph.nodes["positions"]
        q = MLP(tuple(self.hidden) + (1,), activation=self.activation, name="charge_mlp")(scalars)[:, 0]
        q = constrain_charges(q.astype(positions.dtype), graph.n_node, total_charge(graph, positions.dtype))
        atomic = q[:, None] * centred_positions(positions, graph.n_node)  # [N, 3]
        vectors = _channels(features, "1o") if self.atomic_dipoles else None
        if vectors is not None:
            width = int(self.hidden[0]) if len(self.hidden) else 16
            mu = GatedTensorReadout(width, self.activation, name="atomic_dipole")(scalars, vectors)
            atomic = atomic + mu.astype(atomic.dtype)
        return {"charges": q, "dipole": graph_sum(atomic, graph.n_node)}


class PolarizabilityHead(nn.Module):
    """Molecular polarizability, a symmetric rank-2 tensor (PaiNN, ICML 2021, eq. 14).

    ``alpha = scale * sum_i (alpha0_i I + A_i) + shift * n_atoms * I``: the isotropic part
    ``alpha0_i`` from the 0e features (an MLP); the anisotropic part ``A_i`` from the richest
    equivariant features the backbone gives:

    - 2e features: ``A_i`` = the symmetric traceless matrix of one 2e output per atom;
    - 1o features (PaiNN): ``A_i = nu_i ⊗ r_i + r_i ⊗ nu_i`` with ``nu_i`` from the vectors
      (PaiNN's construction, eq. 14);
    - scalars only (SchNet): ``A_i = b_i r_i ⊗ r_i`` with ``b_i`` a second output of the scalar
      MLP, still a proper symmetric tensor that rotates as ``R alpha R^T``, but one that can
      only describe anisotropy through the geometry.

    Positions ``r_i`` are relative to the graph's centroid, so alpha is translation invariant.

    Attributes:
      hidden: widths of the scalar MLP's hidden layers; the first is also the gate width.
      activation: of the MLPs.
      scale: Å³, multiplies the learned part (set from data: ``polarizability_statistics``).
      shift: Å³ per atom, isotropic offset (set from data).

    Returns: ``{"polarizability": [G, 3, 3] Å³}``.
    """

    hidden: Sequence[int] = (64,)
    activation: str = "silu"
    scale: float = 1.0
    shift: float = 0.0

    @nn.compact
    def __call__(self, features: e3nn.IrrepsArray, graph) -> dict:
        scalars = _scalars(features, "PolarizabilityHead")
        positions = graph.nodes["positions"]
        dtype = positions.dtype
        out = MLP(tuple(self.hidden) + (2,), activation=self.activation, name="scalar_mlp")(scalars).astype(dtype)
        eye = jnp.eye(3, dtype=dtype)
        atomic = out[:, 0, None, None] * eye  # [N, 3, 3]
        r = centred_positions(positions, graph.n_node)
        width = int(self.hidden[0]) if len(self.hidden) else 16
        quadrupoles, vectors = _channels(features, "2e"), _channels(features, "1o")
        if quadrupoles is not None:
            y = GatedTensorReadout(width, self.activation, name="anisotropic_2e")(scalars, quadrupoles)
            atomic = atomic + irrep2e_to_matrix(y.astype(dtype))
        elif vectors is not None:
            nu = GatedTensorReadout(width, self.activation, name="anisotropic_1o")(scalars, vectors)
            atomic = atomic + symmetric_outer(nu.astype(dtype), r)
        else:
            atomic = atomic + 0.5 * out[:, 1, None, None] * symmetric_outer(r, r)
        alpha = self.scale * graph_sum(atomic, graph.n_node)
        return {"polarizability": alpha + self.shift * graph.n_node.astype(dtype)[:, None, None] * eye}


HEADS = {"dipole": DipoleHead, "polarizability": PolarizabilityHead}


def polarizability_statistics(structures) -> dict:
    """``{"shift": Å³/atom, "scale": Å³}`` for ``PolarizabilityHead`` from labelled structures.

    shift: least-squares isotropic polarizability per atom (mean of trace/3 over atoms);
    scale: RMS of the residual components per sqrt(atom), so a unit-variance output of the
    atomic terms matches the data's spread.
    """
    alphas, counts = [], []
    for atoms in structures:
        value = atoms.info.get("polarizability")
        if value is not None:
            alphas.append(np.reshape(np.asarray(value, np.float64), (3, 3)))
            counts.append(len(atoms))
    if not alphas:
        raise ValueError("polarizability_statistics() found no structure with a 'polarizability' label")
    alphas, counts = np.stack(alphas), np.asarray(counts, np.float64)
    iso = np.trace(alphas, axis1=1, axis2=2) / 3.0
    shift = float(np.sum(iso) / np.sum(counts))
    residual = alphas - shift * counts[:, None, None] * np.eye(3)
    scale = float(np.sqrt(np.mean(residual**2 / counts[:, None, None])))
    return {"shift": shift, "scale": scale if scale > 0 else 1.0}


class AtomisticModel(nn.Module):
    """Backbone followed by the energy head and optional tensor heads.

    ``__call__`` gives atomic energies [N] (what ``energy_fn`` differentiates); ``outputs``
    runs the backbone once for every head: ``{"atomic_energies" [N], "charges" [N],
    "dipole" [G, 3], "polarizability" [G, 3, 3]}`` (the last three when those heads exist).
    Initialise with ``method=AtomisticModel.outputs`` so every head gets parameters.
    """

    backbone: nn.Module
    energy_head: EnergyHead
    dipole_head: DipoleHead | None = None
    polarizability_head: PolarizabilityHead | None = None

    def __call__(self, graph):
        return self.energy_head(self.backbone(graph))

    def features(self, graph) -> e3nn.IrrepsArray:
        """The backbone's node features [N, irreps] (for equivariance tests and heads)."""
        return self.backbone(graph)

    def outputs(self, graph) -> dict:
        features = self.backbone(graph)
        out = {"atomic_energies": self.energy_head(features)}
        if self.dipole_head is not None:
            out.update(self.dipole_head(features, graph))
        if self.polarizability_head is not None:
            out.update(self.polarizability_head(features, graph))
        return out
