"""Equivariant layer normalisations.

``EquivariantLayerNorm``: of irreps features (Equiformer, Liao and Smidt, ICLR 2023, Sec. 3.3).
``SeparableLayerNorm``: of spherical channels [N, (lmax+1)^2, C] (EquiformerV2, see its docstring).

``EquivariantLayerNorm``, per node and per irrep type ``l`` (a block of ``mul`` channels, each ``2l+1`` components):

    0e:   x_c <- (x_c - mean_c x) / sqrt(mean_c (x_c - mean x)^2 + eps) * g_c + b_c
    l>0:  x_c <- x_c / sqrt(mean_c mean_m x_cm^2 + eps) * g_c

i.e. the usual layer norm on the even scalars, and for every other type a division by the root
mean square over channels of the component-normalised norms ``|x_c|^2 / (2l+1)`` (which commutes
with rotations), with one learned scale ``g`` per channel and no bias or centring (they would
break equivariance). Odd scalars (0o) are not centred (their mean is a pseudo-scalar).
``eps`` keeps the map smooth at zero features (padded nodes, symmetric sites).
"""

from __future__ import annotations

import e3nn_jax as e3nn
import flax.linen as nn
import jax.numpy as jnp


class EquivariantLayerNorm(nn.Module):
    """Layer norm of an ``e3nn.IrrepsArray`` [N, irreps] (see the module docstring).

    Parameters: ``scale_{i}`` [mul] (ones) for every irrep block ``i``, ``bias_{i}`` [mul]
    (zeros) for 0e blocks. Returns an ``IrrepsArray`` with the same irreps.
    """

    eps: float = 1e-5

    @nn.compact
    def __call__(self, x: e3nn.IrrepsArray) -> e3nn.IrrepsArray:
        chunks = []
        for i, ((mul, ir), chunk) in enumerate(zip(x.irreps, x.chunks)):
            if chunk is None:  # a block known to be zero stays zero
                chunks.append(None)
                continue
            even_scalar = ir.l == 0 and ir.p == 1
            if even_scalar:
                chunk = chunk - jnp.mean(chunk, axis=-2, keepdims=True)
            mean_square = jnp.mean(chunk * chunk, axis=(-2, -1), keepdims=True)  # [..., 1, 1]
            scale = self.param(f"scale_{i}", nn.initializers.ones, (mul,), jnp.float32).astype(chunk.dtype)
            chunk = chunk * (scale[:, None] / jnp.sqrt(mean_square + self.eps))
            if even_scalar:
                bias = self.param(f"bias_{i}", nn.initializers.zeros, (mul,), jnp.float32).astype(chunk.dtype)
                chunk = chunk + bias[:, None]
            chunks.append(chunk)
        return e3nn.from_chunks(x.irreps, chunks, x.shape[:-1], x.dtype)


class SeparableLayerNorm(nn.Module):
    """EquiformerV2's separable layer norm of spherical channels (Liao et al., ICLR 2024, Sec. 4.4).

    ``x`` [N, (lmax+1)^2, C] (coefficient ``l^2 + l + m``): the ``l = 0`` coefficients get the
    usual layer norm over channels (centred, scale and bias per channel); all ``l > 0`` are
    divided by one common root mean square, ``s = mean_c sum_{l>=1} (1 / (lmax (2l+1)))
    sum_m x_lmc^2`` (every degree weighted equally, the reference's ``std_balance_degrees``), and
    scaled per degree and channel. Separating ``l = 0`` from the rest keeps the scalars'
    normalisation from being dominated by the higher degrees (and vice versa).

    Parameters: ``scale`` [lmax+1, C] (ones), ``bias`` [C] (zeros).
    """

    eps: float = 1e-5

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        n_coeff, c = x.shape[-2], x.shape[-1]
        lmax = int(round(n_coeff**0.5)) - 1
        scale = self.param("scale", nn.initializers.ones, (lmax + 1, c), jnp.float32).astype(x.dtype)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32).astype(x.dtype)
        s0 = x[..., :1, :] - jnp.mean(x[..., :1, :], axis=-1, keepdims=True)
        s0 = s0 / jnp.sqrt(jnp.mean(s0 * s0, axis=-1, keepdims=True) + self.eps) * scale[0] + bias
        if lmax == 0:
            return s0
        degree = jnp.concatenate([jnp.full((2 * l + 1,), l) for l in range(1, lmax + 1)])  # [(L+1)^2 - 1]
        balance = (1.0 / (lmax * (2 * degree + 1))).astype(x.dtype)
        rest = x[..., 1:, :]
        mean_square = jnp.mean(jnp.einsum("...kc,k->...c", rest * rest, balance), axis=-1)[..., None, None]
        rest = rest / jnp.sqrt(mean_square + self.eps) * scale[degree]
        return jnp.concatenate([s0, rest], axis=-2)
