"""Exponential-normal radial basis (PhysNet; TorchMD-Net's ``ExpNormalSmearing``).

Unke and Meuwly, "PhysNet", J. Chem. Theory Comput. 15, 3678 (2019), Eq. 7; used by Equiformer's
MD17 models (Liao and Smidt, ICLR 2023, App. "basis_type exp").
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from jaxpot.nn.cutoff import cosine_cutoff


def exp_normal_basis(r: jnp.ndarray, r_max: float, n: int = 32) -> jnp.ndarray:
    """``f_c(r) exp(-beta (exp(-alpha r) - mu_k)^2)``, k = 1..n; r [...] in Å -> [..., n].

    ``alpha = 5 / r_max``; centres ``mu_k`` evenly spaced on ``[exp(-alpha r_max), 1]`` (the
    range of ``exp(-alpha r)`` on [0, r_max]; TorchMD-Net writes ``exp(-r_max)``, the same at its
    r_max = 5 Å); ``beta = (2 (1 - exp(-alpha r_max)) / n)^-2``; ``f_c`` is the cosine cutoff, so
    every function and its first derivative vanish at ``r_max``.
    """
    alpha = 5.0 / r_max
    start = math.exp(-alpha * r_max)
    mu = jnp.linspace(start, 1.0, n, dtype=r.dtype)
    beta = (2.0 * (1.0 - start) / n) ** -2
    x = jnp.exp(-alpha * r)[..., None]
    return cosine_cutoff(r, r_max)[..., None] * jnp.exp(-beta * (x - mu) ** 2)
