"""Multi-layer perceptron on the last axis."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxpot.nn.activations import get_activation


class MLP(nn.Module):
    """Dense layers ``features[0] .. features[-1]``, activation between them (not after last).

    Attributes:
      features: output width of every layer.
      activation: name from ``jaxpot.nn.activations.ACTIVATIONS``.
      use_bias: bias in every layer.
      activate_final: apply the activation after the last layer too.
    """

    features: Sequence[int]
    activation: str = "silu"
    use_bias: bool = True
    activate_final: bool = False

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        act = get_activation(self.activation)
        for i, width in enumerate(self.features):
            x = nn.Dense(width, use_bias=self.use_bias, name=f"dense_{i}")(x)
            if i < len(self.features) - 1 or self.activate_final:
                x = act(x)
        return x
