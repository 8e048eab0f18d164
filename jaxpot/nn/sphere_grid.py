"""Sphere grids: spherical-harmonic coefficients <-> values at points of the sphere.

SCN (Zitnick et al., NeurIPS 2022, Sec. 3.3) and eSCN (Passaro and Zitnick, ICML 2023, Sec. 5)
apply non-linearities point-wise on the sphere: evaluate the function with coefficients
``x`` [(lmax+1)^2, C] at grid points, act on each point's C values, project back.

The grid here is Gauss-Legendre in ``cos(theta)`` (theta from the +y pole, e3nn's polar axis)
times ``n_phi`` uniform longitudes. Its quadrature integrates every band-limited function of
degree ``<= min(2 n_theta - 1, n_phi - 1)`` exactly, so ``from_grid(to_grid(x)) = x`` exactly
(to rounding) when ``n_theta >= lmax + 1`` and ``n_phi >= 2 lmax + 1``, and the projection of
``g`` is exact whenever ``g`` times ``Y_lmax`` is within that band-limit. A point-wise
non-linearity ``act(f)`` is not band-limited: what lies beyond the grid's band-limit aliases
back, so the non-linearity is rotation-equivariant only up to that aliasing error, which
decays (exponentially for analytic activations) as the grid is refined.

``truncate=mmax`` restricts the coefficients to ``|m| <= mmax`` (eSCN's edge-frame grid).
"""

from __future__ import annotations

import functools

import e3nn_jax as e3nn
import jax
import numpy as np

from jaxpot.nn.wigner import truncated_indices


@functools.lru_cache(maxsize=None)
def gauss_legendre_grid(n_theta: int, n_phi: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit points [n_theta * n_phi, 3] and quadrature weights [P] summing to 4 pi (float64)."""
    cos_t, w_t = np.polynomial.legendre.leggauss(n_theta)
    phi = 2 * np.pi * np.arange(n_phi) / n_phi
    sin_t = np.sqrt(1.0 - cos_t**2)
    # (x, y, z) = (sin t sin phi, cos t, sin t cos phi): y is the pole, as e3nn's angles_to_xyz
    points = np.stack(
        [np.outer(sin_t, np.sin(phi)), np.outer(cos_t, np.ones(n_phi)), np.outer(sin_t, np.cos(phi))], axis=-1
    ).reshape(-1, 3)
    weights = np.outer(w_t, np.full(n_phi, 2 * np.pi / n_phi)).reshape(-1)
    return points, weights


def default_resolution(lmax: int, mmax: int | None = None) -> tuple[int, int]:
    """``(n_theta, n_phi) = (2 (lmax+1), 4 (mmax+1) - 1)`` with ``mmax = lmax`` unless given:
    products of two band-``lmax`` functions and ``Y_lmax`` (degree 3 lmax) are integrated
    exactly, as is everything a quadratic non-linearity makes of a band-``lmax`` function. For
    coefficients truncated to ``|m| <= mmax`` (eSCN's edge frame, ``truncate=mmax``) the same
    holds in longitude with ``4 (mmax+1) - 1`` points (fairchem's eSCN grid keeps ``2 mmax + 1``)."""
    mmax = lmax if mmax is None else min(mmax, lmax)
    return 2 * (lmax + 1), 4 * (mmax + 1) - 1


@functools.lru_cache(maxsize=None)
def grid_matrices(lmax: int, n_theta: int, n_phi: int, truncate: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(to_grid [P, K], from_grid [K, P])`` (float64) for K coefficients (all, or ``|m| <= truncate``).

    ``values = to_grid @ x`` evaluates ``f(u_p) = sum_k x_k Y_k(u_p)``;
    ``x = from_grid @ values`` is the quadrature of ``(1 / 4 pi) integral f Y_k`` (component
    normalisation: ``integral Y_k Y_k' = 4 pi delta_kk'``).
    """
    order = lmax if truncate is None else min(truncate, lmax)  # |m| in the coefficients
    if n_theta < lmax + 1 or n_phi < 2 * order + 1:
        raise ValueError(
            f"a {n_theta} x {n_phi} grid cannot resolve degree {lmax} and order {order}: need n_theta >= {lmax + 1}, "
            f"n_phi >= {2 * order + 1}"
        )
    points, weights = gauss_legendre_grid(n_theta, n_phi)
    irreps = e3nn.Irreps([(1, (l, (-1) ** l)) for l in range(lmax + 1)])
    with jax.ensure_compile_time_eval():  # constants, also when first called under jit
        y = np.asarray(e3nn.spherical_harmonics(irreps, points, normalize=True).array, dtype=np.float64)  # [P, (L+1)^2]
    if truncate is not None:
        y = y[:, truncated_indices(lmax, truncate)]
    return y, (y * weights[:, None]).T / (4 * np.pi)
