"""Parameters of a dense layer, for use inside ``lax.scan`` / ``jax.checkpoint`` bodies.

A flax ``nn.Dense`` cannot be called inside a plain JAX transform such as the chunked edge
loop of ``jaxpot.nn.edge_sum``. ``DenseParams`` declares the same parameters (same names
``kernel``/``bias``, shapes, initialisers, hence the same values for a given seed and module
path) and returns them as arrays; ``dense`` applies them. A model can switch between
``nn.Dense(..., name="x")`` and ``DenseParams(..., name="x")`` without changing its
parameter tree or its saved checkpoints.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp


class DenseParams(nn.Module):
    """``kernel`` [in, features] and ``bias`` [features] (zeros), as ``nn.Dense``.

    Attributes:
      features: output width.
      use_bias: declare a bias (``None`` is returned otherwise).
      kernel_init: initialiser of the kernel (``nn.Dense``'s default, LeCun normal).
    """

    features: int
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, in_features: int):
        kernel = self.param("kernel", self.kernel_init, (in_features, self.features), jnp.float32)
        if not self.use_bias:
            return kernel, None
        return kernel, self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)


def dense(x: jnp.ndarray, kernel: jnp.ndarray, bias: jnp.ndarray | None = None) -> jnp.ndarray:
    """``x @ kernel + bias`` on the last axis, in the promoted dtype (as ``nn.Dense``)."""
    dtype = jnp.result_type(x, kernel)
    y = jnp.dot(x.astype(dtype), kernel.astype(dtype))
    return y if bias is None else y + bias.astype(dtype)
