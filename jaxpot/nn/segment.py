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


def segment_softmax(
    logits: jnp.ndarray, segment_ids: jnp.ndarray, num_segments: int, weights: jnp.ndarray | None = None
) -> jnp.ndarray:
    """Softmax of ``logits`` [E, ...] over the rows that share a segment (e.g. a node's incoming edges).

    ``a_e = w_e exp(x_e) / sum_{e' : s(e') = s(e)} w_e' exp(x_e')``, i.e. the softmax of
    ``x_e + log w_e``, with non-negative row weights ``w`` [E] (default 1). A row with ``w_e = 0``
    takes no part: its weight is 0 and the others are normalised without it, so a weight that goes
    smoothly to 0 (a cutoff envelope) removes a row continuously. Rows whose segment id is outside
    ``[0, num_segments)`` (jax-md's padding index ``N``) count as ``w_e = 0``.

    Safe on padded graphs: the maximum subtracted for stability is taken over active rows only
    (and held constant for the gradient: the softmax does not depend on it); a segment with no
    active row gives 0 for all its rows, not 0/0; values and gradients stay finite.

    Returns: [E, ...] weights, summing to 1 over the active rows of every segment that has one.
    """
    valid = (segment_ids >= 0) & (segment_ids < num_segments)
    ids = jnp.clip(segment_ids, 0, num_segments - 1)
    w = jnp.ones(segment_ids.shape, logits.dtype) if weights is None else weights.astype(logits.dtype)
    w = jnp.where(valid, w, 0.0).reshape(w.shape + (1,) * (logits.ndim - 1))
    active = jnp.broadcast_to(w > 0, logits.shape)
    neg_inf = jnp.asarray(-jnp.inf, logits.dtype)
    seg_max = jax.ops.segment_max(jnp.where(active, logits, neg_inf), ids, num_segments=num_segments)
    seg_max = jax.lax.stop_gradient(jnp.where(jnp.isfinite(seg_max), seg_max, 0.0))
    numerator = w * jnp.exp(jnp.where(active, logits - seg_max[ids], 0.0))
    denominator = jax.ops.segment_sum(numerator, ids, num_segments=num_segments)[ids]
    return numerator / jnp.where(denominator > 0, denominator, 1.0)
