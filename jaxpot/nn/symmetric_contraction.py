"""Symmetric contraction: element-weighted symmetric polynomials of one channel's irreps.

MACE's product basis (Batatia et al., NeurIPS 2022, eqs. 10-11): for every node ``i`` and
channel ``c``, with ``a = A_i[:, c]`` the ``D`` components of the atomic basis (irreps ``l =
0..l_max`` stacked, ``D = (l_max + 1)^2``),

    B_{i, L M, c} = sum_{nu=1..correlation} sum_k W_{nu L}[z_i, k, c]
                    sum_{m_1..m_nu} U_{nu L}[m_1, .., m_nu, M, k] a_{m_1} ... a_{m_nu}

where ``U_{nu L}`` spans the symmetric ``nu``-fold products of the input irreps that transform
as ``L`` (the generalised Clebsch-Gordan coefficients; here e3nn-jax's
``reduced_symmetric_tensor_product_basis``) and ``W`` are learned, per element ``z_i``.

Computed sparsely (the levers of ``shared/bench/mace_roofline.md``): ``U`` is symmetric, so it
is summed over index orderings once, on the host, into coefficients of the distinct monomials
``a_{m_1} a_{m_2} a_{m_3}`` (``m_1 <= m_2 <= m_3``) that occur, ``Usym[q, M, k]``; per call the
weights are folded in once per element, ``coef[z, q, M, c] = sum_k Usym[q, M, k] W[z, k, c]``
(parameters only, independent of the number of atoms), and per node only the monomials and
one weighted sum over them remain. No one-hot dense contraction over elements, no dense
``D^nu`` tensors.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Sequence

import e3nn_jax as e3nn
import jax
import flax.linen as nn
import jax.numpy as jnp
import numpy as np


def natural_irreps(max_ell: int) -> e3nn.Irreps:
    """``0e + 1o + 2e + ...`` up to ``max_ell`` (parity ``(-1)^l``), as spherical harmonics."""
    return e3nn.Irreps([(1, (ell, (-1) ** ell)) for ell in range(max_ell + 1)])


@functools.cache
def monomial_tables(max_ell_in: int, ells_out: tuple[int, ...], correlation: int):
    """Host tables of the sparse symmetric contraction.

    Returns ``(monomials, blocks)``:
      monomials: tuple over degree ``nu = 1..correlation`` of int arrays [Q_nu, nu] (sorted
        component indices ``m_1 <= .. <= m_nu`` into the ``D`` input components).
      blocks: dict ``(nu, L) -> Usym`` float64 [Q_nu, 2L + 1, K_{nu L}], the coefficient of each
        monomial (``U`` summed over the orderings of its indices); ``K = 0`` where no
        ``nu``-fold product gives ``L``. Only monomials with a nonzero coefficient for some
        ``L`` are kept.
    """
    irreps_in = natural_irreps(max_ell_in)
    dim = irreps_in.dim
    keep = [e3nn.Irrep(ell, (-1) ** ell) for ell in ells_out]
    monomials, blocks = [], {}
    for nu in range(1, correlation + 1):
        basis = e3nn.reduced_symmetric_tensor_product_basis(irreps_in, nu, keep_ir=keep)
        u = np.asarray(basis.array, dtype=np.float64)  # [D]*nu + [sum_L K_L (2L+1)]
        combos = list(itertools.combinations_with_replacement(range(dim), nu))
        index = tuple(np.array(combos).T)
        multiplicity = np.array(
            [math.factorial(nu) / np.prod([math.factorial(c) for c in np.unique(t, return_counts=True)[1]]) for t in combos]
        )
        per_out = {}
        for ell in ells_out:
            ir = e3nn.Irrep(ell, (-1) ** ell)
            cols = [basis.irreps.slices()[i] for i, (mul, ir_) in enumerate(basis.irreps) if ir_ == ir]
            if not cols:
                per_out[ell] = np.zeros((len(combos), 2 * ell + 1, 0))
                continue
            block = np.concatenate([u[(Ellipsis, s)] for s in cols], axis=-1)  # [D]*nu + [K (2L+1)]
            block = block[index].reshape(len(combos), -1, 2 * ell + 1)  # mul-major: [Q, K, 2L+1]
            per_out[ell] = np.swapaxes(block, 1, 2) * multiplicity[:, None, None]  # [Q, 2L+1, K]
        used = np.zeros(len(combos), bool)
        for block in per_out.values():
            used |= np.abs(block).reshape(len(combos), -1).max(axis=1, initial=0.0) > 1e-10
        monomials.append(np.array(combos, dtype=np.int32).reshape(len(combos), nu)[used])
        for ell, block in per_out.items():
            blocks[(nu, ell)] = block[used]
    return tuple(monomials), blocks


def monomial_features(a: jnp.ndarray, monomials: Sequence[np.ndarray]) -> jnp.ndarray:
    """[N, D, C] components -> [N, Q, C] products ``a_{m_1} .. a_{m_nu}``, all degrees stacked.

    Degree ``nu`` products reuse the degree ``nu - 1`` prefix where it is itself a kept monomial.
    """
    out = []
    for table in monomials:
        if table.shape[0] == 0:
            continue
        prod = a[:, table[:, 0], :]
        for j in range(1, table.shape[1]):
            prod = prod * a[:, table[:, j], :]
        out.append(prod)
    return jnp.concatenate(out, axis=1)


@functools.cache
def coupling_path_tensors(max_ell_in: int, ell_out: int, nu: int) -> np.ndarray:
    """mace-torch's product basis: one tensor per generalised Clebsch-Gordan coupling path.

    The paper's eq. 10 sums over the couplings ``eta`` of ``l_1, .., l_nu`` to ``L``: every
    ordered choice of input degrees and intermediate degrees ``l_12, l_123, ..`` (any parity),
    coupled left to right, ``((l_1 (x) l_2) -> l_12) (x) l_3 -> ..``, each step a Wigner 3j
    symbol times ``sqrt(2 l_out + 1)`` ("component" normalisation, mace-torch's
    ``_wigner_nj``). Contracted with a symmetric product ``a^nu`` these paths are linearly
    dependent (``(l_1, l_2)`` and ``(l_2, l_1)`` give one function): 23 paths for 0e and 51 for
    1o at ``nu = 3, l_max = 3``, against 8 and 12 independent couplings.

    Returns float64 [K_paths] + [D] * nu + [2L + 1] (``D = (l_max + 1)^2``).
    """
    dim = (max_ell_in + 1) ** 2
    start = np.cumsum([0] + [2 * ell + 1 for ell in range(max_ell_in + 1)])
    irreps = [e3nn.Irrep(ell, (-1) ** ell) for ell in range(max_ell_in + 1)]
    paths = []  # (irrep, C [2 l_out + 1, D ** k])
    for ell, ir in enumerate(irreps):
        c = np.zeros((ir.dim, dim))
        c[:, start[ell] : start[ell + 1]] = np.eye(ir.dim)
        paths.append((ir, c))
    for _ in range(1, nu):
        longer = []
        for ir_left, c_left in paths:
            for ell, ir in enumerate(irreps):
                for ir_out in ir_left * ir:
                    cg = np.asarray(e3nn.clebsch_gordan(ir_out.l, ir_left.l, ell), np.float64) * math.sqrt(ir_out.dim)
                    c = np.zeros((ir_out.dim, c_left.shape[1], dim))
                    c[..., start[ell] : start[ell + 1]] = np.einsum("jk,ijl->ikl", c_left, cg)
                    longer.append((ir_out, c.reshape(ir_out.dim, -1)))
        paths = longer
    target = e3nn.Irrep(ell_out, (-1) ** ell_out)
    kept = [c.T.reshape((dim,) * nu + (target.dim,)) for ir, c in paths if ir == target]
    return np.stack(kept) if kept else np.zeros((0,) + (dim,) * nu + (target.dim,))


@functools.cache
def coupling_path_map(max_ell_in: int, ell_out: int, nu: int) -> np.ndarray:
    """[K_independent, K_paths]: each coupling path's function in the independent basis.

    ``sum_j W_paths[j] path_j(a) = sum_k (T W_paths)[k] basis_k(a)`` for symmetric ``a^nu``, with
    ``basis_k`` e3nn-jax's ``reduced_symmetric_tensor_product_basis`` (the one
    ``SymmetricContraction`` evaluates), found by least squares on the symmetrised path tensors
    (exact: the residual is checked).
    """
    target = e3nn.Irrep(ell_out, (-1) ** ell_out)
    paths = coupling_path_tensors(max_ell_in, ell_out, nu)
    basis = e3nn.reduced_symmetric_tensor_product_basis(natural_irreps(max_ell_in), nu, keep_ir=[target])
    u = np.asarray(basis.array, np.float64)
    k_ind = u.shape[-1] // target.dim
    if paths.shape[0] == 0 or k_ind == 0:
        return np.zeros((k_ind, paths.shape[0]))
    b = np.moveaxis(u.reshape(u.shape[:-1] + (k_ind, target.dim)), -2, 0).reshape(k_ind, -1)  # [K_ind, X]
    axes = list(itertools.permutations(range(1, nu + 1)))
    sym = sum(np.transpose(paths, (0,) + p + (nu + 1,)) for p in axes) / len(axes)
    p = sym.reshape(paths.shape[0], -1)  # [K_paths, X]
    t, *_ = np.linalg.lstsq(b.T, p.T, rcond=None)  # [K_ind, K_paths]
    residual = np.abs(b.T @ t - p.T).max()
    if residual > 1e-8 * max(1.0, np.abs(p).max()):
        raise RuntimeError(f"coupling paths (L={ell_out}, nu={nu}) not in the symmetric basis: residual {residual:.1e}")
    return t


def _normal(key, shape, dtype=jnp.float32):
    return jax.random.normal(key, shape, dtype)


@functools.cache
def contraction_matrices(max_ell_in: int, ells_out: tuple[int, ...], correlation: int):
    """Dense host matrices of the GEMM form (``SymmetricContraction``).

    Returns ``(select, usym, layout)``: ``select`` [correlation, Q, D + 1] one-hot rows picking
    each monomial's factors (index ``D`` is a constant 1 that pads lower degrees);
    ``usym`` [Q, sum_L (2L+1) K_L] the monomial coefficients of every basis function, columns
    ordered by ``L``, then ``M``, then ``k`` (``k`` running over ``nu = 1..correlation``);
    ``layout`` tuple of ``(L, K_L, [(nu, k_start, k_stop)])``.
    """
    monomials, blocks = monomial_tables(max_ell_in, tuple(ells_out), correlation)
    dim = (max_ell_in + 1) ** 2
    q_total = sum(m.shape[0] for m in monomials)
    select = np.zeros((correlation, q_total, dim + 1))
    row = 0
    for table in monomials:
        for j in range(correlation):
            cols = table[:, j] if j < table.shape[1] else np.full(table.shape[0], dim)
            select[j, row + np.arange(table.shape[0]), cols] = 1.0
        row += table.shape[0]
    columns, layout = [], []
    for ell in ells_out:
        per_nu, spans, k0 = [], [], 0
        for nu in range(1, correlation + 1):
            block = blocks[(nu, ell)]  # [Q_nu, 2L+1, K]
            full = np.zeros((q_total, 2 * ell + 1, block.shape[-1]))
            start = sum(m.shape[0] for m in monomials[: nu - 1])
            full[start : start + block.shape[0]] = block
            per_nu.append(full)
            spans.append((nu, k0, k0 + block.shape[-1]))
            k0 += block.shape[-1]
        columns.append(np.concatenate(per_nu, axis=-1).reshape(q_total, -1))  # [Q, (2L+1) K_L]
        layout.append((ell, k0, tuple(spans)))
    return select, np.concatenate(columns, axis=-1), tuple(layout)


class SymmetricContraction(nn.Module):
    """MACE's symmetric contraction (module docstring), one output per ``ells_out``.

    Attributes:
      max_ell_in: ``l_max`` of the input (``D = (l_max + 1)^2`` components per channel).
      ells_out: output degrees ``L`` (parity ``(-1)^L``).
      correlation: highest product order ``nu``.
      num_species: number of elements (weights are per element).

      weights: ``"independent"``, one weight per linearly independent coupling (``K`` of
        ``reduced_symmetric_tensor_product_basis``), or ``"paths"``, one per coupling path
        as mace-torch parametrises it (``coupling_path_tensors``; 23 / 51 against 8 / 12 at
        ``nu = 3``). Both span the same functions; the path weights are mapped to the
        independent ones once per call (``coupling_path_map``, parameters only), so the cost
        per atom is the same. They train differently: under Adam, ``m`` weights on one
        function move it ``m`` times as far per step.

    Call: ``(a [N, D, C], species [N] int) -> {L: [N, 2L + 1, C]}``. Weights ``W_{nu L}``
    [S, K, C] are initialised ``N(0, 1) / K`` as in mace-torch.

    Evaluated as GEMMs over the rows ``(node, channel)`` (XLA:CPU runs gathers, scatters and
    reductions over middle axes far below peak; GEMMs near it): the monomials' factors are
    picked by one-hot GEMMs, the channel-independent basis values
    ``Phi[(L M k), row] = sum_q Usym[q, (L M k)] mono[q, row]`` are one GEMM, and the weights of
    each node's element, gathered per node ([N, K, C]), weight them: no loop over elements.
    """

    max_ell_in: int
    ells_out: tuple[int, ...]
    correlation: int
    num_species: int
    weights: str = "independent"

    @nn.compact
    def __call__(self, a: jnp.ndarray, species: jnp.ndarray) -> dict[int, jnp.ndarray]:
        dim = (self.max_ell_in + 1) ** 2
        if self.weights not in ("independent", "paths"):
            raise ValueError(f"weights must be 'independent' or 'paths', got {self.weights!r}")
        if a.shape[1] != dim:
            raise ValueError(f"expected {dim} components per channel, got {a.shape[1]}")
        n, _, channels = a.shape
        select, usym, layout = contraction_matrices(self.max_ell_in, tuple(self.ells_out), self.correlation)
        rows = jnp.concatenate([jnp.swapaxes(a, 0, 1).reshape(dim, n * channels), jnp.ones((1, n * channels), a.dtype)])
        factors = [jnp.dot(jnp.asarray(select[j], a.dtype), rows) for j in range(self.correlation)]  # [Q, R]
        mono = functools.reduce(jnp.multiply, factors)
        phi = jnp.dot(jnp.asarray(usym.T, a.dtype), mono)  # [sum (2L+1) K, R]
        result, col = {}, 0
        for ell, k_total, spans in layout:
            weights = []
            for nu, k0, k1 in spans:
                if k1 == k0:
                    continue
                if self.weights == "paths":
                    t = coupling_path_map(self.max_ell_in, ell, nu)  # [K, K_paths]
                    w = self.param(
                        f"path_weights_{ell}_{nu}",
                        lambda key, shape, k=t.shape[1]: _normal(key, shape) / k,
                        (self.num_species, t.shape[1], channels),
                    )
                    w = jnp.einsum("kj,sjc->skc", jnp.asarray(t, a.dtype), w.astype(a.dtype))  # [S, K, C]
                else:
                    w = self.param(
                        f"weights_{ell}_{nu}", lambda key, shape, k=k1 - k0: _normal(key, shape) / k, (self.num_species, k1 - k0, channels)
                    )
                weights.append(w.astype(a.dtype))
            w = jnp.swapaxes(jnp.concatenate(weights, axis=1)[species], 0, 1)  # [K, N, C]
            block = phi[col : col + (2 * ell + 1) * k_total].reshape(2 * ell + 1, k_total, n, channels)
            result[ell] = jnp.swapaxes(jnp.sum(block * w[None], axis=1), 0, 1)  # [N, 2L+1, C]
            col += (2 * ell + 1) * k_total
        return result


def symmetric_contraction_reference(a, weights, species, max_ell_in, ell_out, correlation):
    """Brute-force ``B`` from the dense ``U`` tensors (for tests): ``a`` [N, D, C], ``weights``
    ``{nu: [S, K, C]}`` -> [N, 2L + 1, C]."""
    irreps_in = natural_irreps(max_ell_in)
    ir = e3nn.Irrep(ell_out, (-1) ** ell_out)
    a = np.asarray(a, np.float64)
    out = 0.0
    letters = "abdefg"
    for nu in range(1, correlation + 1):
        basis = e3nn.reduced_symmetric_tensor_product_basis(irreps_in, nu, keep_ir=[ir])
        u = np.asarray(basis.array, np.float64)
        if u.shape[-1] == 0:
            continue
        u = u.reshape(u.shape[:-1] + (-1, 2 * ell_out + 1))  # [D]*nu + [K, 2L+1]
        idx = letters[:nu]
        x = np.einsum(f"{idx}KM," + ",".join(f"z{c}C" for c in idx) + "->zKMC", u, *([a] * nu))
        w = np.asarray(weights[nu], np.float64)[np.asarray(species)]  # [N, K, C]
        out = out + np.einsum("zKMC,zKC->zMC", x, w)
    return out
