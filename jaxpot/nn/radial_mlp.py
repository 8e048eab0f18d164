"""Radial MLP: per-edge weights of an equivariant convolution from a radial embedding.

NequIP (Batzner et al. 2022, Eq. 4: ``R(r) = MLP(B(r) u(r))``), MACE, SEGNN-style models weight
each tensor-product path by a learned function of the edge length. The MLP has no biases (as
e3nn's ``FullyConnectedNet``), so an embedding that is zero at the cutoff gives zero weights
there, as smoothly as the embedding itself.

The parameters are declared by a flax module (``RadialMLPParams``) and applied by a pure
function (``radial_mlp``), so the MLP can be evaluated inside the chunked edge loop of
``jaxpot.nn.edge_sum`` (a ``lax.scan`` body, where flax modules cannot be called).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxpot.nn.activations import get_activation


class RadialMLPParams(nn.Module):
    """Kernels ``[in, h1], [h1, h2], ..., [h_k, out]`` (LeCun normal), no biases.

    Attributes:
      features: widths of every layer, the last one being the number of weights per edge.
    """

    features: Sequence[int]

    @nn.compact
    def __call__(self, in_features: int) -> tuple[jnp.ndarray, ...]:
        widths = (in_features,) + tuple(self.features)
        return tuple(
            self.param(f"kernel_{i}", nn.initializers.lecun_normal(), (a, b), jnp.float32)
            for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))
        )


def radial_mlp(x: jnp.ndarray, kernels: Sequence[jnp.ndarray], activation: str = "silu") -> jnp.ndarray:
    """[E, in] radial embedding -> [E, out] weights; activation between layers, not after the last.

    Computed in the promoted dtype of ``x`` and the kernels (as ``nn.Dense``). ``f(0) = 0``
    whenever ``activation(0) = 0`` (silu, tanh).
    """
    act = get_activation(activation)
    dtype = jnp.result_type(x, *kernels)
    x = x.astype(dtype)
    for i, kernel in enumerate(kernels):
        x = jnp.dot(x, kernel.astype(dtype))
        if i < len(kernels) - 1:
            x = act(x)
    return x
