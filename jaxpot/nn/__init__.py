"""Parameter-free maths and small blocks shared by the models."""

from jaxpot.nn.activations import get_activation, shifted_softplus
from jaxpot.nn.cutoff import cosine_cutoff, polynomial_envelope
from jaxpot.nn.mlp import MLP
from jaxpot.nn.norm import safe_norm, safe_normalize, smooth_norm
from jaxpot.nn.radial import bessel_basis, gaussian_basis
from jaxpot.nn.segment import graph_sum, node_graph_index, scatter_mean, scatter_sum

__all__ = [
    "MLP",
    "bessel_basis",
    "cosine_cutoff",
    "gaussian_basis",
    "get_activation",
    "graph_sum",
    "node_graph_index",
    "polynomial_envelope",
    "safe_norm",
    "safe_normalize",
    "scatter_mean",
    "scatter_sum",
    "shifted_softplus",
    "smooth_norm",
]
