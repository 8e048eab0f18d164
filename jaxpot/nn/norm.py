"""Norms whose gradient stays finite at zero.

Padded edges have zero length (sender == receiver, zero shift), and PaiNN's vector
features start at zero; ``jnp.linalg.norm`` has a NaN gradient there.
"""

from __future__ import annotations

import jax.numpy as jnp


def safe_norm(x: jnp.ndarray, axis: int = -1, keepdims: bool = False) -> jnp.ndarray:
    """Euclidean norm along ``axis`` with gradient 0 (not NaN) where ``x == 0``.

    Uses the double-``where`` trick, so the value is exact everywhere, including 0.
    """
    sq = jnp.sum(x * x, axis=axis, keepdims=keepdims)
    nonzero = sq > 0
    safe_sq = jnp.where(nonzero, sq, 1.0)
    return jnp.where(nonzero, jnp.sqrt(safe_sq), 0.0)


def safe_normalize(x: jnp.ndarray, axis: int = -1) -> jnp.ndarray:
    """``x / |x|`` along ``axis``; 0 where ``x == 0``, with finite gradients."""
    n = safe_norm(x, axis=axis, keepdims=True)
    return x / jnp.where(n > 0, n, 1.0)


def smooth_norm(x: jnp.ndarray, axis: int = -1, eps: float = 1e-8, keepdims: bool = False) -> jnp.ndarray:
    """``sqrt(|x|^2 + eps)``: a norm that is smooth everywhere, including at ``x = 0``.

    ``|x|`` has a cone-shaped cusp at 0. Equivariant vector features are exactly zero at
    symmetric sites (every atom of diamond Si, a molecule's symmetry axis), so a model using
    ``|x|`` has an ill-defined gradient (forces, Hessians) there; PaiNN's reference uses this
    smoothed norm for the same reason.
    """
    return jnp.sqrt(jnp.sum(x * x, axis=axis, keepdims=keepdims) + eps)
