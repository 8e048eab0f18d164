"""Radial bases: distances ``r`` [E] (Å) -> features [E, n]."""

from __future__ import annotations

import jax.numpy as jnp


def bessel_basis(r: jnp.ndarray, r_max: float, n: int = 8) -> jnp.ndarray:
    """Spherical Bessel (sinc) basis ``sqrt(2/r_max) sin(k pi r / r_max) / r``, k = 1..n.

    DimeNet (Klicpera et al., ICLR 2020, eq. 7); PaiNN (Schütt et al., ICML 2021) uses the
    same functions without the prefactor. At r = 0 (padded edges) the limit ``k pi / r_max``
    is returned, with finite gradients.
    """
    k = jnp.arange(1, n + 1, dtype=r.dtype)
    r = r[..., None]
    nonzero = r > 0
    safe_r = jnp.where(nonzero, r, 1.0)
    values = jnp.where(nonzero, jnp.sin(k * jnp.pi * safe_r / r_max) / safe_r, k * jnp.pi / r_max)
    return jnp.sqrt(2.0 / r_max).astype(r.dtype) * values


def gaussian_basis(
    r: jnp.ndarray, r_max: float, n: int = 50, r_min: float = 0.0, gamma: float | None = None
) -> jnp.ndarray:
    """Gaussians ``exp(-gamma (r - mu_k)^2)`` with centres evenly spaced on [r_min, r_max].

    SchNet (Schütt et al., J. Chem. Phys. 148, 241722 (2018), eq. 10). ``gamma`` defaults to
    ``1 / (2 spacing^2)``; the paper's choice is 0.1 Å spacing and gamma = 10 Å^-2.
    """
    mu = jnp.linspace(r_min, r_max, n, dtype=r.dtype)
    if gamma is None:
        spacing = (r_max - r_min) / max(n - 1, 1)
        gamma = 0.5 / spacing**2
    return jnp.exp(-gamma * (r[..., None] - mu) ** 2)
