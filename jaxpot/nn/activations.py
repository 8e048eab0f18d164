"""Activations used by the models."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def shifted_softplus(x: jnp.ndarray) -> jnp.ndarray:
    """``ln(0.5 e^x + 0.5)`` = softplus(x) - ln 2; SchNet (Schütt et al., 2018, eq. 5)."""
    return jax.nn.softplus(x) - jnp.log(2.0).astype(x.dtype)


ACTIVATIONS = {
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "ssp": shifted_softplus,
    "shifted_softplus": shifted_softplus,
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
}


def get_activation(name: str):
    """Look up an activation by name; ``ValueError`` lists the known names."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}"
        ) from None
