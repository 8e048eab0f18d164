"""Smooth cutoff envelopes ``f(r)``: 1 at r = 0, 0 at and beyond ``r_max``.

All take distances ``r`` [...] in Å and return the same shape and dtype.
"""

from __future__ import annotations

import jax.numpy as jnp


def cosine_cutoff(r: jnp.ndarray, r_max: float) -> jnp.ndarray:
    """Behler's cosine cutoff ``0.5 (cos(pi r / r_max) + 1)`` for r < r_max, else 0.

    Behler and Parrinello, PRL 98, 146401 (2007); used by SchNet and PaiNN. Its value and
    first derivative vanish at ``r_max``.
    """
    x = r / r_max
    return jnp.where(x < 1.0, 0.5 * (jnp.cos(jnp.pi * x) + 1.0), 0.0).astype(r.dtype)


def polynomial_envelope(r: jnp.ndarray, r_max: float, p: int = 6) -> jnp.ndarray:
    """DimeNet's polynomial envelope (Klicpera et al., ICLR 2020, eq. 8).

    ``u(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2)`` with ``x = r / r_max``;
    smooth up to the ``p``-th derivative at ``r_max``. MACE/NequIP use ``p = 5`` or 6.
    """
    x = r / r_max
    c1 = (p + 1.0) * (p + 2.0) / 2.0
    c2 = p * (p + 2.0)
    c3 = p * (p + 1.0) / 2.0
    xp = x**p
    u = 1.0 - c1 * xp + c2 * xp * x - c3 * xp * x * x
    return jnp.where(x < 1.0, u, 0.0).astype(r.dtype)
