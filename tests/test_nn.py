"""Building blocks: radial bases, envelopes, norms, segment sums."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpot.nn import (
    MLP,
    bessel_basis,
    cosine_cutoff,
    gaussian_basis,
    graph_sum,
    polynomial_envelope,
    safe_norm,
    scatter_mean,
    scatter_sum,
    smooth_norm,
)


def test_safe_norm_value_and_gradient_at_zero():
    x = jnp.zeros((4, 3))
    assert np.all(safe_norm(x) == 0)
    g = jax.grad(lambda x: jnp.sum(safe_norm(x)))(x)
    assert np.all(np.isfinite(g))
    y = jnp.array([[3.0, 4.0, 0.0]])
    assert float(safe_norm(y)[0]) == 5.0
    np.testing.assert_allclose(jax.grad(lambda x: jnp.sum(safe_norm(x)))(y), [[0.6, 0.8, 0.0]], rtol=1e-6)
    assert np.all(np.isfinite(jax.hessian(lambda v: smooth_norm(v))(jnp.zeros(3))))


@pytest.mark.parametrize("envelope", [cosine_cutoff, polynomial_envelope])
def test_envelopes(envelope):
    r = jnp.linspace(0.0, 6.0, 601, dtype=jnp.float64)
    f = envelope(r, 5.0)
    assert float(f[0]) == pytest.approx(1.0)
    assert np.all(np.asarray(f[r >= 5.0]) == 0.0)
    df = jax.vmap(jax.grad(lambda x: envelope(x, 5.0)))(r)
    assert abs(float(df[500])) < 1e-8 and abs(float(jax.grad(lambda x: envelope(x, 5.0))(5.0 - 1e-6))) < 1e-4
    assert np.all(np.diff(np.asarray(f)) <= 1e-12), "monotone decreasing"


def test_bessel_basis_finite_at_zero_and_orthonormal():
    r = jnp.array([0.0, 1.0, 2.5], dtype=jnp.float64)
    b = bessel_basis(r, 5.0, 8)
    assert b.shape == (3, 8) and np.all(np.isfinite(b))
    g = jax.jacfwd(lambda r: bessel_basis(r, 5.0, 8))(r)
    assert np.all(np.isfinite(g))
    # orthonormal on [0, r_max] with weight r^2
    x = jnp.linspace(1e-6, 5.0, 20001, dtype=jnp.float64)
    bx = bessel_basis(x, 5.0, 4)
    gram = jnp.einsum("ri,rj,r->ij", bx, bx, x**2) * (x[1] - x[0])
    np.testing.assert_allclose(gram, np.eye(4), atol=2e-3)


def test_gaussian_basis():
    b = gaussian_basis(jnp.array([0.0, 2.5]), 5.0, 51, gamma=10.0)
    assert b.shape == (2, 51)
    assert int(jnp.argmax(b[1])) == 25


def test_segment_helpers():
    data = jnp.arange(12.0).reshape(6, 2)
    idx = jnp.array([0, 0, 2, 2, 2, 3])
    np.testing.assert_array_equal(scatter_sum(data, idx, 4), [[2, 4], [0, 0], [18, 21], [10, 11]])
    np.testing.assert_array_equal(scatter_mean(data, idx, 4)[2], [6, 7])
    np.testing.assert_array_equal(graph_sum(jnp.ones(6), jnp.array([2, 3, 1])), [2, 3, 1])


def test_mlp_shapes():
    mlp = MLP((8, 3), activation="ssp")
    params = mlp.init(jax.random.PRNGKey(0), jnp.ones((5, 4)))
    assert mlp.apply(params, jnp.ones((5, 4))).shape == (5, 3)
    with pytest.raises(ValueError, match="unknown activation"):
        MLP((2,), activation="relux").init(jax.random.PRNGKey(0), jnp.ones((1, 2)))


def _edge_messages(nodes, edge_chunk, senders):
    (h,), (w, u) = nodes, edge_chunk
    m = jnp.tanh(h[senders] * w)  # [C, F], non-linear in both, so second derivatives are non-trivial
    return m, m[:, None, :] * u[:, :, None]  # [C, F], [C, 3, F]


@pytest.mark.parametrize("chunk", [64, 20, 7])  # one chunk (rematerialised), an even split, a padded one
def test_edge_sum_equals_the_direct_sum_with_derivatives(chunk):
    from jaxpot.nn.edge_sum import chunk_layout, edge_sum

    rng = np.random.default_rng(0)
    n, e, f = 9, 40, 5
    senders = jnp.asarray(rng.integers(0, n, e))
    receivers = jnp.asarray(np.r_[rng.integers(0, n, e - 2), n, n])  # two jax-md style padding edges
    h = jnp.asarray(rng.normal(size=(n, f)))
    w = jnp.asarray(rng.normal(size=(e, f)))
    u = jnp.asarray(rng.normal(size=(e, 3)))
    assert (chunk_layout(e, chunk)[0] == 1) == (chunk >= e)

    def chunked(h, w, u):
        s, v = edge_sum(_edge_messages, (h,), (w, u), senders, receivers, n, chunk)
        return jnp.sum(jnp.sin(s)) + jnp.sum(v**2)

    def direct(h, w, u):
        s, v = _edge_messages((h,), (w, u), senders)
        s = jax.ops.segment_sum(s, receivers, n)  # drops receiver n, as edge_sum does
        v = jax.ops.segment_sum(v, receivers, n)
        return jnp.sum(jnp.sin(s)) + jnp.sum(v**2)

    args = (h, w, u)
    np.testing.assert_allclose(jax.jit(chunked)(*args), direct(*args), rtol=1e-12)
    for a, b in zip(jax.jit(jax.grad(chunked, (0, 1, 2)))(*args), jax.grad(direct, (0, 1, 2))(*args)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)

    # a parameter gradient of a gradient (a force loss): second order through the sum
    def force_loss(fn):
        return lambda h, w, u: jnp.sum(jax.grad(fn, 2)(h, w, u) ** 2)

    for a, b in zip(jax.jit(jax.grad(force_loss(chunked), (0, 1)))(*args), jax.grad(force_loss(direct), (0, 1))(*args)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_split_dense_equals_the_split_of_dense():
    from jaxpot.nn.dense import dense, split_dense

    rng = np.random.default_rng(1)
    x, k, b = (jnp.asarray(rng.normal(size=s)) for s in ((4, 3, 5), (5, 6), (6,)))
    for bias in (b, None):
        want = jnp.split(dense(x, k, bias), 3, axis=-1)
        got = split_dense(x, k, bias, parts=3)
        assert len(got) == 3
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-12)
