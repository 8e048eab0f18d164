"""Scatter/segment helpers on static-size arrays (padded graphs)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def scatter_sum(
    data: jnp.ndarray, index: jnp.ndarray, num_segments: int, indices_are_sorted: bool = False
) -> jnp.ndarray:
    """Sum rows of ``data`` [E, ...] into ``num_segments`` bins by ``index`` [E]."""
    return jax.ops.segment_sum(
        data, index, num_segments=num_segments, indices_are_sorted=indices_are_sorted
    )


def scatter_mean(data: jnp.ndarray, index: jnp.ndarray, num_segments: int) -> jnp.ndarray:
    """Mean of rows of ``data`` per bin; empty bins give 0."""
    total = jax.ops.segment_sum(data, index, num_segments=num_segments)
    count = jax.ops.segment_sum(jnp.ones_like(index, dtype=data.dtype), index, num_segments)
    count = jnp.maximum(count, 1.0).reshape((-1,) + (1,) * (data.ndim - 1))
    return total / count


def node_graph_index(n_node: jnp.ndarray, num_nodes: int) -> jnp.ndarray:
    """Graph index of every node [N] from ``n_node`` [G] (static total ``num_nodes``)."""
    return jnp.repeat(jnp.arange(n_node.shape[0]), n_node, total_repeat_length=num_nodes)


def graph_sum(node_values: jnp.ndarray, n_node: jnp.ndarray) -> jnp.ndarray:
    """Sum per-node values [N, ...] to per-graph values [G, ...]."""
    gid = node_graph_index(n_node, node_values.shape[0])
    return jax.ops.segment_sum(node_values, gid, n_node.shape[0], indices_are_sorted=True)
