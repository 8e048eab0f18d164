"""SO(2) convolution: an SO(3) convolution in an edge's frame (eSCN, Passaro and Zitnick, ICML 2023).

In a frame where the edge points along the polar axis (+y in e3nn's convention, see
``jaxpot.nn.wigner``), an SO(3)-equivariant linear map of spherical-harmonic coefficients that
depends only on the edge is a linear map that commutes with rotations about the axis
(paper, Sec. 4, eqs. 7-10). Such a map is block diagonal in the order ``m``: for every
``m > 0`` it acts on the pair ``(x_{+m}, x_{-m})`` (all degrees ``l >= m`` and all channels
flattened together) as a complex multiplication

    y_{+m} = W_r x_{+m} - W_i x_{-m},     y_{-m} = W_i x_{+m} + W_r x_{-m}      (eq. 9)

and on ``m = 0`` by one real matrix. Truncating to ``|m| <= mmax`` keeps the cost O(L^3)
(instead of the O(L^6) of Clebsch-Gordan tensor products).

Layout. Edge-frame inputs are the *truncated* coefficients [E, K, C]:
``K = len(wigner.truncated_indices(lmax, mmax))`` coefficients with ``|m| <= mmax``, l-major
and m ascending within each degree (rows of ``wigner_d`` picked by ``truncated_indices``).

How to use (an SO(3)-equivariant edge message, e.g. for eSCN or EquiformerV2)::

    from jaxpot.nn.wigner import edge_frame, wigner_d, truncated_indices, safe_unit
    from jaxpot.nn.so2 import SO2Convolution

    unit, r = safe_unit(edge_vectors)                       # [E, 3], [E]
    d = wigner_d(edge_frame(unit), lmax)                    # [E, (L+1)^2, (L+1)^2]
    idx = truncated_indices(lmax, mmax)
    to_edge = d[:, idx, :]                                  # [E, K, (L+1)^2]: global -> edge frame
    x_edge = to_edge @ x[senders]                           # [E, K, C]
    y_edge = SO2Convolution(lmax, mmax, C_out, hidden_channels=H)(x_edge, edge_scalars)
    y = jnp.swapaxes(to_edge, 1, 2) @ y_edge                # [E, (L+1)^2, C_out], back to the global frame

``edge_scalars`` [E, F] are rotation invariants (distance embeddings, species). With
``hidden_channels`` set, every weight is ``W2 diag(h(edge)) W1`` (eSCN's ``SO2Conv``: a
bottleneck of ``hidden_channels`` modulated by ``h = act(Dense(edge_scalars))``, separate for the
real and imaginary parts and for ``m = 0``); with ``hidden_channels=None`` the weights are plain
learned matrices (no edge dependence; modulate ``x_edge`` by radial weights yourself, as
EquiformerV2 does, if you need one). Either way the map commutes with rotations about the
edge axis, so the result is exactly independent of the frame's roll.
"""

from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxpot.nn.wigner import truncated_indices


@functools.lru_cache(maxsize=None)
def m_positions(lmax: int, mmax: int) -> tuple[np.ndarray, tuple[tuple[np.ndarray, np.ndarray], ...]]:
    """Positions in the truncated layout: ``(m0 [L+1], ((plus_m [L-m+1], minus_m [L-m+1]) for m=1..mmax))``."""
    pos = {}
    for k, (l, m) in enumerate((l, m) for l in range(lmax + 1) for m in range(-min(l, mmax), min(l, mmax) + 1)):
        pos[(l, m)] = k
    assert len(pos) == len(truncated_indices(lmax, mmax))
    m0 = np.array([pos[(l, 0)] for l in range(lmax + 1)])
    pairs = tuple(
        (np.array([pos[(l, m)] for l in range(m, lmax + 1)]), np.array([pos[(l, -m)] for l in range(m, lmax + 1)]))
        for m in range(1, mmax + 1)
    )
    return m0, pairs


class _BottleneckLinear(nn.Module):
    """``x [E, n] -> W2 (h * (W1 x))`` with ``h`` [E, H] given, or ``W x`` when ``h`` is None."""

    features: int
    hidden: int | None

    @nn.compact
    def __call__(self, x, h):
        if h is None:
            return nn.Dense(self.features, use_bias=False, name="w")(x)
        x = nn.Dense(self.hidden, use_bias=False, name="w1")(x) * h
        return nn.Dense(self.features, use_bias=False, name="w2")(x)


class SO2Convolution(nn.Module):
    """SO(2) convolution of truncated edge-frame coefficients (eSCN eqs. 7-10, ``SO2Block``).

    Attributes:
      lmax: largest degree L.
      mmax: largest order kept (``0 <= mmax <= lmax``).
      out_channels: output channels per coefficient.
      hidden_channels: eSCN bottleneck width (edge-modulated weights), or ``None`` for plain
        learned weights.
      activation: applied to the dense map of ``edge_scalars`` that gives the modulation ``h``.

    Call: ``(x [E, K, C_in], edge_scalars [E, F] or None) -> [E, K, out_channels]``.
    """

    lmax: int
    mmax: int
    out_channels: int
    hidden_channels: int | None = None
    activation: Callable = jax.nn.silu

    @nn.compact
    def __call__(self, x: jnp.ndarray, edge_scalars: jnp.ndarray | None = None) -> jnp.ndarray:
        if not 0 <= self.mmax <= self.lmax:
            raise ValueError(f"need 0 <= mmax <= lmax, got mmax={self.mmax}, lmax={self.lmax}")
        k = len(truncated_indices(self.lmax, self.mmax))
        if x.shape[-2] != k:
            raise ValueError(f"expected {k} truncated coefficients (lmax={self.lmax}, mmax={self.mmax}), got {x.shape}")
        modulated = self.hidden_channels is not None
        if modulated and edge_scalars is None:
            raise ValueError("SO2Convolution with hidden_channels needs edge_scalars")
        e, c_out = x.shape[0], self.out_channels
        m0, pairs = m_positions(self.lmax, self.mmax)
        out = jnp.zeros(x.shape[:-1] + (c_out,), jnp.result_type(x, jnp.float32))

        # m = 0: real weights over all degrees and channels.
        h0 = self.activation(nn.Dense(self.hidden_channels, name="dist_m0")(edge_scalars)) if modulated else None
        y0 = _BottleneckLinear(len(m0) * c_out, self.hidden_channels, name="m0")(x[:, m0].reshape(e, -1), h0)
        out = out.at[:, m0].set(y0.reshape(e, len(m0), c_out))

        for m, (plus, minus) in enumerate(pairs, start=1):
            n = len(plus)
            hr = hi = None
            if modulated:
                h = self.activation(nn.Dense(2 * self.hidden_channels, name=f"dist_m{m}")(edge_scalars))
                hr, hi = jnp.split(h, 2, axis=-1)
            real = _BottleneckLinear(n * c_out, self.hidden_channels, name=f"m{m}_real")
            imag = _BottleneckLinear(n * c_out, self.hidden_channels, name=f"m{m}_imag")
            # (x_+ and x_- through the same real/imaginary maps: stack them on a leading axis)
            xs = jnp.stack([x[:, plus].reshape(e, -1), x[:, minus].reshape(e, -1)])  # [2, E, n C]
            r = real(xs, None if hr is None else hr[None])
            i = imag(xs, None if hi is None else hi[None])
            y_plus = (r[0] - i[1]).reshape(e, n, c_out)
            y_minus = (r[1] + i[0]).reshape(e, n, c_out)
            out = out.at[:, plus].set(y_plus).at[:, minus].set(y_minus)
        return out
