"""Parameter-free pieces of Equiformer's equivariant graph attention (Liao and Smidt, ICLR 2023, Sec. 3.3).

Multi-head attention over each node's incoming edges with irreps values: the attention
weights are invariant scalars per edge and head (from the invariant part of the message, "MLP
attention"); the values are irreps features whose channels are split evenly between
the heads. Shared by Equiformer and EquiformerV2 (which changes how messages are computed, not
how they are attended).
"""

from __future__ import annotations

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxpot.nn.segment import segment_softmax


def smooth_leaky_relu(x: jnp.ndarray, negative_slope: float = 0.2) -> jnp.ndarray:
    """``(1+a)/2 x + (1-a)/2 x (2 sigmoid(x) - 1)``: LeakyReLU(a) with a smooth kink.

    Equiformer's attention activation (the reference code's ``SmoothLeakyReLU``); -> ``x`` for
    large positive ``x`` and ``a x`` for large negative ``x``. Smooth, so forces and Hessians of
    the energy are continuous.
    """
    a = negative_slope
    return 0.5 * (1.0 + a) * x + 0.5 * (1.0 - a) * x * (2.0 * jax.nn.sigmoid(x) - 1.0)


def head_irreps(irreps_head: e3nn.Irreps, num_heads: int) -> e3nn.Irreps:
    """Irreps of the concatenated heads: ``mul x ir`` of one head becomes ``num_heads*mul x ir``.

    Head ``h`` owns channels ``[h mul, (h+1) mul)`` of every block (Equiformer's ``Vec2AttnHeads``
    layout).
    """
    return e3nn.Irreps([(mul * num_heads, ir) for mul, ir in e3nn.Irreps(irreps_head)])


def head_of_channel(irreps_heads: e3nn.Irreps, num_heads: int) -> np.ndarray:
    """[num_irreps] int: the head owning every channel (irrep copy) of ``head_irreps`` output."""
    return np.concatenate(
        [np.repeat(np.arange(num_heads), mul // num_heads) for mul, _ in e3nn.Irreps(irreps_heads)]
        or [np.zeros(0, int)]
    )


def mlp_attention_logits(scalars: jnp.ndarray, alpha_dot: jnp.ndarray, negative_slope: float = 0.2) -> jnp.ndarray:
    """Attention logits ``z_ij = a^T LeakyReLU(f_ij^(0))`` per head (Sec. 3.3 "MLP attention", GATv2-style).

    Args:
      scalars: [E, H*K] invariant features ``f_ij^(0)`` of every edge (already linearly mixed).
      alpha_dot: [H, K] the vector ``a`` of every head.

    Returns:
      [E, H] logits.
    """
    num_heads, k = alpha_dot.shape
    x = smooth_leaky_relu(scalars.reshape(scalars.shape[:-1] + (num_heads, k)), negative_slope)
    return jnp.einsum("ehk,hk->eh", x, alpha_dot.astype(x.dtype))


def attention_weights(logits: jnp.ndarray, envelope: jnp.ndarray, receivers: jnp.ndarray, num_nodes: int) -> jnp.ndarray:
    """``alpha_ij = u(r_ij) exp(z_ij) / sum_k u(r_ik) exp(z_ik)`` [E, H]: the envelope-weighted softmax.

    The paper's softmax (Sec. 3.3) with every term weighted by the smooth cutoff envelope ``u``
    (``segment_softmax``). The paper's softmax over a hard radius graph is discontinuous: an
    edge entering the cutoff takes a finite share of the weight at once. Weighted by ``u``, an
    entering edge's share starts at 0 and the other edges' shares do not jump.

    Args:
      logits: [E, H] attention logits ``z_ij``.
      envelope: [E] ``u(r_ij)`` >= 0, zero at and beyond the cutoff.
      receivers: [E] int, the node ``i`` of every edge (out-of-range ids take no part).
      num_nodes: N.
    """
    return segment_softmax(logits, receivers, num_nodes, weights=envelope)


def aggregate(
    values: e3nn.IrrepsArray,
    alpha: jnp.ndarray,
    envelope: jnp.ndarray,
    receivers: jnp.ndarray,
    num_nodes: int,
    head_index: np.ndarray,
) -> e3nn.IrrepsArray:
    """``y_i = sum_j alpha_ij u(r_ij) v_ij``, per head.

    The extra ``u`` on the values covers a node whose only neighbour is entering the cutoff
    (there ``alpha = 1`` however small ``u`` is). With ``attention_weights`` the output, hence
    the energy, is as smooth at the cutoff as ``u``.

    Args:
      values: [E, irreps_heads] per-edge values ``v_ij``, channels split between heads by
        ``head_index``.
      alpha: [E, H] attention weights (``attention_weights``).
      envelope: [E] ``u(r_ij)``.
      receivers: [E] int.
      num_nodes: N.
      head_index: [num_irreps] head of every channel of ``values`` (``head_of_channel``).

    Returns:
      [N, irreps_heads].
    """
    weight = (alpha * envelope[:, None].astype(alpha.dtype))[:, head_index]  # [E, num_irreps]
    weighted = values * weight.astype(values.dtype)
    summed = jax.ops.segment_sum(weighted.array, receivers, num_segments=num_nodes)
    return e3nn.IrrepsArray(values.irreps, summed)
