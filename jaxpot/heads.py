"""Readout heads: node features (``e3nn.IrrepsArray``) -> per-atom properties."""

from __future__ import annotations

from typing import Sequence

import e3nn_jax as e3nn
import flax.linen as nn
import jax.numpy as jnp

from jaxpot.nn import MLP


class EnergyHead(nn.Module):
    """Atomic energies from the invariant (0e) part of the node features.

    An MLP ``hidden -> 1`` on the scalars, as SchNet (JCP 2018, Sec. II.A: atom-wise layers
    then sum) and PaiNN (Sec. 4: two-layer output network) do; per-species shift and scale
    are applied by the ``Potential``.

    Returns: [N] atomic energies (model units, before scale and E0).
    """

    hidden: Sequence[int] = (64,)
    activation: str = "silu"

    @nn.compact
    def __call__(self, features: e3nn.IrrepsArray) -> jnp.ndarray:
        scalars = features.filter(keep="0e").array
        if scalars.shape[-1] == 0:
            raise ValueError(f"EnergyHead needs 0e features; the backbone gave {features.irreps}")
        return MLP(tuple(self.hidden) + (1,), activation=self.activation, name="mlp")(scalars)[:, 0]


class AtomisticModel(nn.Module):
    """Backbone followed by the energy head: graph -> atomic energies [N]."""

    backbone: nn.Module
    energy_head: EnergyHead

    def __call__(self, graph):
        return self.energy_head(self.backbone(graph))

    def features(self, graph) -> e3nn.IrrepsArray:
        """The backbone's node features [N, irreps] (for equivariance tests and heads)."""
        return self.backbone(graph)
