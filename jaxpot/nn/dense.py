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
    """``x @ kernel + bias`` on the last axis, in the promoted dtype (as ``nn.Dense``).

    ``x`` [..., in] is flattened to [M, in] for the product (a free reshape): the kernel's
    gradient is then a rank-2 product ``x^T @ dy``. On a rank-3 ``x`` (PaiNN's [N, 3, F]
    vectors) it contracts two axes, and XLA:CPU materialises a transposed copy of the
    cotangent for it (9 such copies were 6 % of a PaiNN training step's traced time; the
    loss gradient is 5 % faster without them).
    """
    dtype = jnp.result_type(x, kernel)
    flat = x.astype(dtype).reshape(-1, x.shape[-1])
    y = jnp.dot(flat, kernel.astype(dtype)).reshape(x.shape[:-1] + kernel.shape[-1:])
    return y if bias is None else y + bias.astype(dtype)


def split_dense(x: jnp.ndarray, kernel: jnp.ndarray, bias: jnp.ndarray | None, parts: int) -> tuple:
    """``jnp.split(dense(x, kernel, bias), parts, axis=-1)``, computed as ``parts`` products with
    the kernel's column blocks.

    The values are the same; the gradient differs in cost: the transpose of a split output is a
    concatenation of ``parts`` cotangents the size of ``x @ kernel``, which XLA:CPU copies,
    while here only the small kernel blocks are concatenated (PaiNN's ``phi_1``, ``UV``, ``a_1``:
    3-5 % of a training step).
    """
    kernels = jnp.split(kernel, parts, axis=-1)
    biases = jnp.split(bias, parts) if bias is not None else (None,) * parts
    return tuple(dense(x, k, b) for k, b in zip(kernels, biases))
