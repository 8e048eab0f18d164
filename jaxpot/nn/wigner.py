"""Edge frames and Wigner-D matrices of real spherical harmonics (e3nn-jax's convention).

Conventions (those of ``e3nn.spherical_harmonics``): coefficients of degree ``l`` sit at
indices ``l^2 .. l^2 + 2l`` of a [(lmax+1)^2] axis, the order ``m = -l..l`` at ``l^2 + l + m``.
The polar axis is **y**: the ``m = 0`` harmonic of every degree depends only on ``u_y``, and
a rotation by ``psi`` about y turns every pair ``(x_{l,-m}, x_{l,+m})`` by ``m psi``, with the
same orientation for all ``l`` (so ``x_{+m} + i x_{-m}`` picks up ``exp(i m psi)``).

``wigner_d(rotation, lmax)`` is the block-diagonal matrix ``D`` with ``Y(R u) = D(R) Y(u)``;
features ``x`` [(lmax+1)^2, C] rotate as ``x -> D(R) x``. It is built from the rotation
matrix as a polynomial (spherical harmonics of rotated sample points times a fixed
pseudo-inverse), without Euler angles, so it has no singularity and exact derivatives for
every rotation.

``edge_frame(unit)`` is a rotation taking each edge direction to +y. SCN (Zitnick et al.,
NeurIPS 2022, Sec. 3.2) and eSCN (Passaro and Zitnick, ICML 2023, Sec. 4) rotate node
embeddings into such a frame so that the edge only has ``m = 0`` components there.
"""

from __future__ import annotations

import functools

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np


def num_coefficients(lmax: int) -> int:
    return (lmax + 1) ** 2


def m_index(l: int, m: int) -> int:
    """Index of the coefficient (l, m) on a [(lmax+1)^2] axis."""
    return l * l + l + m


def truncated_indices(lmax: int, mmax: int) -> np.ndarray:
    """Indices of the coefficients with ``|m| <= mmax`` (l-major, m ascending), [K]."""
    return np.array([m_index(l, m) for l in range(lmax + 1) for m in range(-min(l, mmax), min(l, mmax) + 1)])


def _sh(vectors: jnp.ndarray, l: int) -> jnp.ndarray:
    """Real spherical harmonics of degree ``l`` (component normalisation, no re-normalisation of
    ``vectors``: a polynomial of degree l) [..., 2l+1]."""
    return e3nn.spherical_harmonics(e3nn.Irreps(f"{l}e" if l % 2 == 0 else f"{l}o"), vectors, normalize=False).array


@functools.lru_cache(maxsize=None)
def _sample_points_and_pinv(l: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed random unit points P [K, 3] (K = 2(2l+1)) and ``pinv(Y_l(P))`` [2l+1, K] (float64)."""
    rng = np.random.default_rng(1000 + l)
    points = rng.normal(size=(2 * (2 * l + 1), 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    with jax.ensure_compile_time_eval():  # constants, also when first called under jit
        y = np.asarray(e3nn.spherical_harmonics(e3nn.Irreps(e3nn.Irrep(l, (-1) ** l)), np.asarray(points), normalize=False).array, dtype=np.float64)
    return points, np.linalg.pinv(y)


def wigner_d_blocks(rotation: jnp.ndarray, lmax: int) -> list[jnp.ndarray]:
    """Per-degree Wigner-D blocks ``D_l(R)`` [..., 2l+1, 2l+1] of rotations ``R`` [..., 3, 3].

    ``Y_l(R u) = D_l(R) Y_l(u)``. From ``Y_l(R P) = Y_l(P) D_l^T`` at 2(2l+1) fixed points:
    ``D_l = (pinv(Y_l(P)) Y_l(R P))^T``, exact up to rounding for orthogonal ``R``.
    """
    dtype = rotation.dtype
    blocks = [jnp.ones(rotation.shape[:-2] + (1, 1), dtype)]
    for l in range(1, lmax + 1):
        points, pinv = _sample_points_and_pinv(l)
        rotated = jnp.einsum("...ij,kj->...ki", rotation, jnp.asarray(points, dtype))  # [..., K, 3]
        y = _sh(rotated, l)  # [..., K, 2l+1]
        blocks.append(jnp.swapaxes(jnp.einsum("ak,...kb->...ab", jnp.asarray(pinv, dtype), y), -1, -2))
    return blocks


def wigner_d(rotation: jnp.ndarray, lmax: int) -> jnp.ndarray:
    """Block-diagonal Wigner-D [..., (lmax+1)^2, (lmax+1)^2] of rotations [..., 3, 3]."""
    blocks = wigner_d_blocks(rotation, lmax)
    size = num_coefficients(lmax)
    out = jnp.zeros(rotation.shape[:-2] + (size, size), rotation.dtype)
    for l, block in enumerate(blocks):
        out = out.at[..., l * l : (l + 1) ** 2, l * l : (l + 1) ** 2].set(block)
    return out


def _rotation_to_axis(u: jnp.ndarray, axis: jnp.ndarray) -> jnp.ndarray:
    """Rodrigues' minimal rotation taking unit ``u`` [E, 3] to unit ``axis`` [3]:
    ``R = I + [v]x + [v]x^2 / (1 + c)``, ``v = u x axis``, ``c = u . axis``; smooth except at
    ``u = -axis`` (the caller only uses it where ``c >= 0``, and guards the denominator)."""
    v = jnp.cross(u, jnp.broadcast_to(axis, u.shape))
    c = u @ axis
    zero = jnp.zeros_like(c)
    vx = jnp.stack(
        [
            jnp.stack([zero, -v[:, 2], v[:, 1]], -1),
            jnp.stack([v[:, 2], zero, -v[:, 0]], -1),
            jnp.stack([-v[:, 1], v[:, 0], zero], -1),
        ],
        -2,
    )
    den = jnp.where(1.0 + c > 0.5, 1.0 + c, 1.0)
    return jnp.eye(3, dtype=u.dtype) + vx + (vx @ vx) / den[:, None, None]


def edge_frame(unit: jnp.ndarray) -> jnp.ndarray:
    """Rotations [E, 3, 3] with ``R @ unit = +y`` for unit vectors ``unit`` [E, 3].

    Two charts, so that every rotation is smooth in ``unit`` within its chart: for
    ``u_y >= 0`` the minimal rotation to +y; for ``u_y < 0`` the minimal rotation to -y followed
    by a half-turn about x (which maps -y to +y). The roll about y (the frame's free angle)
    therefore jumps where ``u_y`` changes sign; everything SO(2)-equivariant in the edge frame
    is independent of the roll (see ``jaxpot.nn.so2``). Zero vectors (padded edges) must be
    replaced by any unit vector by the caller.
    """
    y = jnp.array([0.0, 1.0, 0.0], unit.dtype)
    up = _rotation_to_axis(unit, y)
    half_turn_x = jnp.diag(jnp.array([1.0, -1.0, -1.0], unit.dtype))
    down = half_turn_x @ _rotation_to_axis(unit, -y)
    return jnp.where((unit[:, 1] >= 0)[:, None, None], up, down)


def roll_matrix(psi: float | jnp.ndarray, lmax: int, dtype=jnp.float32) -> jnp.ndarray:
    """Wigner-D [(lmax+1)^2, (lmax+1)^2] of the rotation by ``psi`` about +y (the edge axis)."""
    c, s = jnp.cos(psi), jnp.sin(psi)
    rot_y = jnp.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype)
    return wigner_d(rot_y, lmax)


def safe_unit(vectors: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(unit [E, 3], r [E])``: unit vectors and lengths with finite gradients everywhere; a zero
    vector (a padded edge) gets the unit vector along (1, 1, 1)/sqrt(3) (any direction would do)."""
    r2 = jnp.sum(vectors * vectors, axis=-1)
    nonzero = r2 > 0
    safe = jnp.where(nonzero[:, None], vectors, jnp.ones_like(vectors))
    r_safe = jnp.sqrt(jnp.sum(safe * safe, axis=-1))
    unit = safe / r_safe[:, None]
    return unit, jnp.where(nonzero, r_safe, 0.0)


def spherical_channels_to_irreps(x: jnp.ndarray) -> e3nn.IrrepsArray:
    """Spherical channels [N, (lmax+1)^2, C] -> ``e3nn.IrrepsArray`` [N, "C x 0e + C x 1o + C x 2e + ..."].

    Parity ``(-1)^l``: the coefficients are those of a function on the sphere, which inversion
    maps to ``f(-u)``.
    """
    n, k, c = x.shape
    lmax = int(round(np.sqrt(k))) - 1
    chunks = [jnp.swapaxes(x[:, l * l : (l + 1) ** 2, :], 1, 2).reshape(n, c * (2 * l + 1)) for l in range(lmax + 1)]
    irreps = e3nn.Irreps([(c, (l, (-1) ** l)) for l in range(lmax + 1)])
    return e3nn.IrrepsArray(irreps, jnp.concatenate(chunks, axis=-1))
