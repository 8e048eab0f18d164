"""k-space pieces of Ewald message passing: k-vector sets, their weights, structure factors.

Parameter-free maths for ``jaxpot.longrange.ewald`` (Kosmala, Gasteiger, Gao, Günnemann,
"Ewald-based Long-Range Message Passing for Molecular Graphs", ICML 2023, arXiv:2303.04791).

Both variants sample the same normalised k-space measure ``d³k / ((4π/3) k_c³)`` over the ball
``|k| <= k_c``, so a filter ``Φ(|k|)`` means the same real-space kernel in both:

- periodic: the reciprocal lattice ``k = n B`` of the graph's cell (``B = 2π A^{-T}``, rows),
  ``n`` integer, ``0 < |k| <= k_c``, each point weighing ``(2π)³ / V`` (the k-space volume per
  lattice point). Computed on device from ``graph.globals["cell"]`` with a static box of
  indices ``|n_i| <= max_index`` and a mask, so it runs in jax-md and the strain derivative
  (stress) sees ``k`` and ``V`` change with the cell.
- aperiodic: a fixed quadrature of the ball: Gauss-Legendre in ``|k|`` times a product rule on
  the sphere (Gauss-Legendre in ``cos θ``, uniform in ``φ``), exact for spherical harmonics up
  to ``angular_degree``. The paper uses a cubic voxel grid and rotates molecules into their
  SVD frame (not invariant where singular values are degenerate, and sign-ambiguous); full
  spheres make the energy rotation invariant up to the angular quadrature error, bounded by
  ``angular_error_bound``.

Only one of ``k`` and ``-k`` is kept (weight doubled): the messages are even in ``k``.
"""

from __future__ import annotations

import functools
import math

import jax.numpy as jnp
import numpy as np


def max_index_for(k_cutoff: float, max_cell_length: float) -> int:
    """Smallest index box ``|n_i| <= m`` holding every ``|k| <= k_cutoff`` of any cell whose
    vectors are at most ``max_cell_length`` Å long (``n_i = k·a_i / 2π``)."""
    return max(1, int(math.ceil(k_cutoff * max_cell_length / (2 * math.pi) - 1e-9)))


@functools.lru_cache(maxsize=None)
def half_index_box(max_index: int) -> np.ndarray:
    """[M, 3] integer vectors ``n`` in ``[-m, m]³``, one of each pair ``±n``, origin excluded
    (lexicographically positive ones); ``M = ((2m + 1)³ - 1) / 2``."""
    r = np.arange(-max_index, max_index + 1)
    n = np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)
    positive = (n[:, 0] > 0) | ((n[:, 0] == 0) & ((n[:, 1] > 0) | ((n[:, 1] == 0) & (n[:, 2] > 0))))
    return n[positive]


def ball_volume(k_cutoff: float) -> float:
    return 4.0 / 3.0 * math.pi * k_cutoff**3


def reciprocal_cell(cell: jnp.ndarray):
    """``(B [G, 3, 3], V [G])``: reciprocal vectors ``b_i = 2π a_j × a_k / V`` as rows, so that
    ``a_i · b_j = 2π δ_ij``, and the volume ``|a_1 · (a_2 × a_3)|`` (Å³). Cross products, not
    ``jnp.linalg.inv``: XLA:CPU's batched 3x3 LAPACK calls and their second derivatives (force
    training) cost more than the whole Ewald block."""
    a1, a2, a3 = cell[:, 0], cell[:, 1], cell[:, 2]
    c23, c31, c12 = jnp.cross(a2, a3), jnp.cross(a3, a1), jnp.cross(a1, a2)
    signed = jnp.sum(a1 * c23, axis=-1)
    recip = 2 * jnp.pi * jnp.stack([c23, c31, c12], axis=1) / signed[:, None, None]
    return recip, jnp.abs(signed)


def reciprocal_k_vectors(cell: jnp.ndarray, periodic: jnp.ndarray, k_cutoff: float, max_index: int):
    """Reciprocal lattice vectors of every graph's cell inside the ``k_cutoff`` ball.

    Args:
      cell: [G, 3, 3] lattice vectors as rows, Å.
      periodic: [G] bool; other graphs get zero vectors and weights (and no NaN from their
        singular cells).
      k_cutoff: Å⁻¹.
      max_index: static index box (``max_index_for``).

    Returns:
      ``(k [G, M, 3] Å⁻¹, weight [G, M])``: weight ``2 (2π)³ / (V (4π/3) k_c³)`` for
      ``0 < |k| <= k_c`` (2 for the dropped ``-k``), else 0.
    """
    dtype = cell.dtype
    eye = jnp.eye(3, dtype=dtype)
    safe_cell = jnp.where(periodic[:, None, None], cell, eye)
    recip, volume = reciprocal_cell(safe_cell)
    n = jnp.asarray(half_index_box(max_index), dtype)
    k = jnp.einsum("md,gde->gme", n, recip)
    inside = (jnp.sum(k * k, axis=-1) <= k_cutoff**2) & periodic[:, None]
    weight = jnp.where(inside, 2 * (2 * jnp.pi) ** 3 / (volume[:, None] * ball_volume(k_cutoff)), 0.0)
    return jnp.where(inside[..., None], k, 0.0), weight.astype(dtype)


@functools.lru_cache(maxsize=None)
def sphere_quadrature(angular_degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Directions [P, 3] and weights [P] (sum 1) of a product rule on the unit sphere, exact
    for spherical harmonics of degree <= ``angular_degree`` (odd), one of each ``±u``.

    Gauss-Legendre in ``z = cos θ`` with ``(L + 1) / 2`` nodes (exact to degree L in z) times
    ``L + 1`` equally spaced ``φ`` (exact for ``e^{imφ}``, ``|m| <= L``). The set is symmetric
    under ``u -> -u`` (z nodes symmetric, ``φ + π`` in the set), so half of it is kept.
    """
    if angular_degree < 1 or angular_degree % 2 == 0:
        raise ValueError(f"angular_degree must be odd and positive, got {angular_degree}")
    n_z, n_phi = (angular_degree + 1) // 2, angular_degree + 1
    z, wz = np.polynomial.legendre.leggauss(n_z)
    phi = 2 * np.pi * np.arange(n_phi) / n_phi
    rows, weights = [], []
    for i in range(n_z):
        for j in range(n_phi):
            # keep the upper half: z > 0, or the equator's first half-turn (z = 0 exactly for odd n_z)
            upper = i > (n_z - 1) / 2 or (2 * i == n_z - 1 and j < n_phi // 2)
            if not upper:
                continue
            s = math.sqrt(max(0.0, 1.0 - z[i] ** 2))
            rows.append([s * math.cos(phi[j]), s * math.sin(phi[j]), z[i]])
            weights.append(2 * wz[i] / 2 / n_phi)  # weight of the pair ±u: wz/2 · 1/n_phi each
    return np.asarray(rows), np.asarray(weights)


@functools.lru_cache(maxsize=None)
def ball_quadrature(k_cutoff: float, num_radial: int, angular_degree: int) -> tuple[np.ndarray, np.ndarray]:
    """k-vectors [K, 3] (Å⁻¹) and weights [K] (sum 1) of ``∫_{|k|<=k_c} f(k) d³k / ((4π/3) k_c³)``
    for functions even in ``k``: Gauss-Legendre in ``|k|`` on ``(0, k_c)`` (with the ``k²``
    Jacobian) times ``sphere_quadrature``; ``K = num_radial · P``."""
    radii, radial_w, directions, angular_w = ball_shells(k_cutoff, num_radial, angular_degree)
    k = (radii[:, None, None] * directions[None]).reshape(-1, 3)
    w = (radial_w[:, None] * angular_w[None]).reshape(-1)
    return k, w


@functools.lru_cache(maxsize=None)
def ball_shells(k_cutoff: float, num_radial: int, angular_degree: int):
    """``ball_quadrature`` in product form: ``(radii [S] Å⁻¹, radial_weights [S],
    directions [P, 3], angular_weights [P])``, so that ``k = radii[s] directions[p]`` and
    ``w = radial_weights[s] angular_weights[p]`` (``s``-major order, as ``ball_quadrature``)."""
    t, wt = np.polynomial.legendre.leggauss(num_radial)
    radii = 0.5 * k_cutoff * (t + 1.0)
    radial_w = 0.5 * k_cutoff * wt * radii**2 * 4 * np.pi / ball_volume(k_cutoff)
    directions, angular_w = sphere_quadrature(angular_degree)
    return radii, radial_w, directions, angular_w


def angular_error_bound(x, angular_degree: int, terms: int = 80) -> np.ndarray:
    """Bound on ``|Q[cos(k u·r)] - sin(x)/x|``, ``x = |k||r|``, for ``sphere_quadrature(L)``.

    ``cos(x u·r̂) = sum_{l even} (2l + 1) (-1)^{l/2} j_l(x) P_l(u·r̂)``; the rule integrates
    ``P_l`` exactly (to 0) for ``0 < l <= L`` and, having positive weights summing to 1, gives
    ``|Q[P_l]| <= 1`` above, so the error is at most ``sum_{l even > L} (2l + 1) |j_l(x)|``.
    """
    from scipy.special import spherical_jn

    x = np.asarray(x, dtype=np.float64)
    first = angular_degree + 1 if (angular_degree + 1) % 2 == 0 else angular_degree + 2
    ls = np.arange(first, first + 2 * terms, 2)
    terms_ = (2 * ls[:, None] + 1) * np.abs(spherical_jn(ls[:, None], x.reshape(-1)[None]))
    return np.sum(terms_, axis=0).reshape(x.shape)


@functools.lru_cache(maxsize=None)
def angular_degree_for(k_cutoff: float, max_separation: float = 17.0, tolerance: float = 1e-5) -> int:
    """The smallest odd degree whose ``angular_error_bound`` stays below ``tolerance`` for atoms up
    to ``max_separation`` Å apart at ``|k| = k_cutoff``: 17 at the paper's 0.4 Å⁻¹, 27 at 0.8,
    35 at 1.2 (the rule grows with ``k_c r``, so a larger ``k_c`` needs more directions)."""
    degree = 1
    while angular_error_bound(float(k_cutoff) * float(max_separation), degree) >= tolerance:
        degree += 2
    return degree


def structure_factor(h: jnp.ndarray, phase: jnp.ndarray, membership: jnp.ndarray):
    """``s_k = sum_i h_i exp(-i k·r_i)`` per graph and channel (paper's structure factor).

    Args:
      h: [N, C] node features; phase: [N, K] ``k·r_i`` with the node's graph's k-vectors;
      membership: [G, N] one-hot graph membership (dense products, no scatter: XLA:CPU's
        scatter-adds over [N, K, C] were 20x slower than the whole backbone).

    Returns: ``(Re s [G, K, C], Im s [G, K, C])``.
    """
    cos, sin = jnp.cos(phase), jnp.sin(phase)
    real = jnp.einsum("gn,nk,nc->gkc", membership, cos, h)
    imag = -jnp.einsum("gn,nk,nc->gkc", membership, sin, h)
    return real, imag


def ewald_messages(h, phase, membership, filt):
    """``m_i = sum_k Φ_k Re(s_k exp(i k·r_i))`` (the long-range message of the paper's Sec. 3).

    Args:
      h: [N, C]; phase: [N, K]; membership: [G, N] one-hot; filt: [G, K, C] the filter times
        the k-point weights.

    Returns: [N, C].
    """
    real, imag = structure_factor(h, phase, membership)
    cos, sin = jnp.cos(phase), jnp.sin(phase)
    # Re(s e^{iθ}) = Re s cos θ - Im s sin θ, each node reading its own graph's s
    return jnp.einsum("gn,nk,gkc->nc", membership, cos, filt * real) - jnp.einsum(
        "gn,nk,gkc->nc", membership, sin, filt * imag
    )


# -- the ball's sum in real space ------------------------------------------------------------
#
# On the ball the filter depends on |k| only, so each shell's direction sum is a kernel of the
# pair's separation: m_i = sum_s Φ_s rw_s sum_{j in graph(i)} h_j A_s(r_i - r_j),
# A_s(r) = sum_p aw_p cos(k_s u_p · r). The same quadrature, summed in another order (equal
# to rounding), through [S, N, N] arrays instead of the [G, K, C] structure factors, whose
# memory traffic dominates the k-space form's training step on CPU (profiled: the step time
# follows G K C, not the G N K C products). Its cost grows as N², so it is used for batches
# of small molecules (``pairs_are_cheaper``) and the k-space form for large graphs.


def pairs_are_cheaper(num_nodes: int, num_graphs: int, num_k: int, channels: int, num_shells: int) -> bool:
    """Static choice between the two exact evaluations of the ball's messages: real-space
    pairs cost ``N² (2K + S C)`` (kernels, then products with ``h``); k-space ``2 G N K C``
    multiply-adds plus the [G, K, C] arrays' traffic (counted as much again)."""
    return num_nodes * (2 * num_k + num_shells * channels) <= 4 * num_graphs * num_k * channels


def shell_kernels(r: jnp.ndarray, k_shells: jnp.ndarray, angular_w: jnp.ndarray, pair_mask: jnp.ndarray):
    """``A_s(r_i - r_j) = sum_p aw_p cos(k_sp · (r_i - r_j))`` for every pair, [S, N, N].

    Args:
      r: [N, 3] positions (Å), relative to anything (only differences enter);
      k_shells: [S, P, 3] the ball's k-vectors by shell (Å⁻¹); angular_w: [P];
      pair_mask: [N, N] pairs that interact (same graph), as 0/1 of ``r``'s dtype.

    ``cos(a - b) = cos a cos b + sin a sin b``: one product of [N, 2P] phase tables per shell.
    """
    phase = jnp.einsum("nd,spd->snp", r, k_shells)
    e = jnp.concatenate([jnp.cos(phase), jnp.sin(phase)], axis=-1)  # [S, N, 2P]
    w = jnp.concatenate([angular_w, angular_w])
    return jnp.einsum("snp,smp->snm", e * w, e) * pair_mask


def pair_messages(h: jnp.ndarray, kernels: jnp.ndarray, shell_filter: jnp.ndarray) -> jnp.ndarray:
    """``m_i = sum_s Φ_s sum_j A_s(r_ij) h_j`` [N, C], ``kernels`` [S, N, N] (``shell_kernels``),
    ``shell_filter`` [S, C] the filter at each shell's ``|k|`` times its radial weight."""
    return jnp.einsum("snm,mc,sc->nc", kernels, h, shell_filter)
