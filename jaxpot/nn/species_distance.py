"""Invariant edge embedding from the distance and the two elements (SCN's ``DistanceBlock``,
eSCN's ``EdgeBlock``).

Zitnick et al., NeurIPS 2022, Sec. 3.2 (SCN); Passaro and Zitnick, ICML 2023, Sec. 5 (eSCN):
``h_e = act(Dense(act(Dense(gaussians(r)) + E_src[z_s] + E_tgt[z_t])))``, the element
embeddings initialised uniformly in [-0.001, 0.001] as the references do.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxpot.nn.radial import gaussian_basis


def _uniform(scale: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


class SpeciesDistanceEmbedding(nn.Module):
    """``(r [E] Å, species_src [E], species_tgt [E]) -> [E, features]``.

    Attributes:
      features: output width (SCN ``num_basis_functions``, eSCN ``edge_channels``).
      num_species: size of the species table.
      cutoff: Å, the last Gaussian centre.
      distance_resolution: spacing of the Gaussian centres (Å); their number is
        ``int(cutoff / distance_resolution)`` as in the references.
      basis_width_scalar: Gaussian width in units of the spacing.
    """

    features: int
    num_species: int
    cutoff: float
    distance_resolution: float = 0.02
    basis_width_scalar: float = 1.0
    activation: Callable = jax.nn.silu

    @nn.compact
    def __call__(self, r, species_src, species_tgt):
        n = max(int(self.cutoff / self.distance_resolution), 2)
        spacing = self.cutoff / (n - 1)
        gamma = 0.5 / (self.basis_width_scalar * spacing) ** 2
        g = gaussian_basis(r, self.cutoff, n, gamma=gamma)
        x = nn.Dense(self.features, name="distance")(g)
        x = x + nn.Embed(self.num_species, self.features, embedding_init=_uniform(1e-3), name="source")(species_src).astype(x.dtype)
        x = x + nn.Embed(self.num_species, self.features, embedding_init=_uniform(1e-3), name="target")(species_tgt).astype(x.dtype)
        x = self.activation(x)
        return self.activation(nn.Dense(self.features, name="edge")(x))
