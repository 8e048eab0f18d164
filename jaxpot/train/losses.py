"""Weighted losses on energies, forces, stress, dipoles and polarizabilities.

Every term is returned as a (sum, count) pair over the real, labelled entries of a padded
batch, so that sums over batches or devices give exactly the loss of the combined batch.
Predictions and labels share the graph layout (DESIGN.md "Graph"): per-graph quantities in
``graph.globals``, per-atom ones in ``graph.nodes``, ``weight_<label>`` [G] marks which graphs
carry a label.
"""

from __future__ import annotations

import jax.numpy as jnp
import jraph

from jaxpot.graph import graph_mask
from jaxpot.nn import node_graph_index

# quantity -> (where the label lives, per-atom normalisation of graph quantities)
QUANTITIES = ("energy", "forces", "stress", "dipole", "polarizability")


def _graph_weight(graph: jraph.GraphsTuple, key: str) -> jnp.ndarray:
    """[G] weight: 1 for real graphs that carry ``key``."""
    mask = graph_mask(graph).astype(jnp.float64)
    w = graph.globals.get(f"weight_{key}")
    return mask if w is None else mask * w


def squared_errors(pred: dict, graph: jraph.GraphsTuple) -> dict[str, tuple[jnp.ndarray, jnp.ndarray]]:
    """(sum of squared errors, number of compared values) per quantity present in both.

    Energy is compared per atom (eV/atom), forces per Cartesian component, stress, dipole and
    polarizability per tensor component.
    """
    out = {}
    n_atoms = jnp.maximum(graph.n_node, 1).astype(jnp.float64)
    for key in QUANTITIES:
        if key not in pred:
            continue
        if key == "forces":
            if "forces" not in graph.nodes:
                continue
            w_graph = _graph_weight(graph, "forces")
            w = w_graph[node_graph_index(graph.n_node, graph.nodes["forces"].shape[0])]
            err = (pred["forces"] - graph.nodes["forces"]) ** 2
            out[key] = (jnp.sum(w[:, None] * err), 3.0 * jnp.sum(w))
            continue
        if key not in graph.globals:
            continue
        w = _graph_weight(graph, key)
        diff = pred[key] - graph.globals[key]
        if key == "energy":
            diff = diff / n_atoms
        err = jnp.sum(diff.reshape(diff.shape[0], -1) ** 2, axis=-1)
        size = diff.reshape(diff.shape[0], -1).shape[-1]
        out[key] = (jnp.sum(w * err), size * jnp.sum(w))
    return out


def weighted_loss(terms: dict[str, tuple[jnp.ndarray, jnp.ndarray]], weights: dict[str, jnp.ndarray]) -> jnp.ndarray:
    """``sum_q w_q * (sum of squared errors_q / count_q)`` (mean squared errors, weighted)."""
    loss = 0.0
    for key, (sse, count) in terms.items():
        if key in weights:
            loss = loss + weights[key] * sse / jnp.maximum(count, 1.0)
    return loss
