"""Optimiser, learning-rate schedules and the exponential moving average of parameters."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax


def scale_by_amsgrad(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> optax.GradientTransformation:
    """AMSGrad as PyTorch's ``Adam(amsgrad=True)``, which MACE, NequIP and SchNetPack train with.

    ``m_t = b1 m + (1 - b1) g``, ``v_t = b2 v + (1 - b2) g^2``, ``v_max = max(v_max, v_t)`` (the
    raw second moment), update ``(m_t / (1 - b1^t)) / (sqrt(v_max / (1 - b2^t)) + eps)``.
    Reddi, Kale and Kumar (ICLR 2018, Algorithm 2) with Adam's bias corrections applied after the
    maximum. ``optax.amsgrad`` takes the maximum of the *bias-corrected* moment instead, so one
    large early gradient (a random model's first steps) sets the denominator for hundreds of
    steps: the same learning rate then trains several times more slowly than in those codes.
    The state is optax's ``ScaleByAmsgradState``.
    """

    def init_fn(params):
        zeros = lambda: jax.tree_util.tree_map(jnp.zeros_like, params)  # noqa: E731
        return optax.ScaleByAmsgradState(count=jnp.zeros([], jnp.int32), mu=zeros(), nu=zeros(), nu_max=zeros())

    def update_fn(updates, state, params=None):
        del params
        count = state.count + 1
        mu = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
        nu = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, updates)
        nu_max = jax.tree_util.tree_map(jnp.maximum, state.nu_max, nu)
        t = count.astype(jnp.float32)
        c1, c2 = 1 - b1**t, 1 - b2**t

        def step(m, v):
            return ((m / c1.astype(m.dtype)) / (jnp.sqrt(v / c2.astype(v.dtype)) + eps)).astype(m.dtype)

        return jax.tree_util.tree_map(step, mu, nu_max), optax.ScaleByAmsgradState(count, mu, nu, nu_max)

    return optax.GradientTransformation(init_fn, update_fn)


def amsgrad(learning_rate, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> optax.GradientTransformation:
    """PyTorch's AMSGrad (``scale_by_amsgrad``) with learning rate ``learning_rate``."""
    return optax.chain(scale_by_amsgrad(b1, b2, eps), optax.scale_by_learning_rate(learning_rate))


def make_optimizer(name: str = "amsgrad", clip_norm: float | None = 10.0, weight_decay: float = 0.0):
    """Adam or AMSGrad (MACE's default; PyTorch's variant, ``scale_by_amsgrad``) with global-norm
    clipping; ``"amsgrad_optax"`` is ``optax.amsgrad``.

    The learning rate is an injected hyperparameter (``opt_state.hyperparams["learning_rate"]``)
    set every step from the host, so warm-up, cosine and plateau schedules all resume exactly.
    """
    base = {"adam": optax.adam, "amsgrad": amsgrad, "amsgrad_optax": optax.amsgrad, "adamw": optax.adamw}
    if name not in base:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(base)}")

    def build(learning_rate):
        kwargs = {"weight_decay": weight_decay} if name == "adamw" else {}
        parts = [optax.clip_by_global_norm(clip_norm)] if clip_norm else []
        return optax.chain(*parts, base[name](learning_rate, **kwargs))

    return optax.inject_hyperparams(build)(learning_rate=1e-3)


def learning_rate(step: int, total_steps: int, base_lr: float, schedule: str = "cosine",
                  warmup_steps: int = 0, final_fraction: float = 0.01, plateau_factor: float = 1.0) -> float:
    """Learning rate at ``step``: linear warm-up, then constant, cosine or plateau-scaled.

    ``plateau_factor`` is the product of the reductions applied so far by ``Plateau``.
    """
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "cosine":
        t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return base_lr * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * t)))
    if schedule in ("constant", "plateau"):
        return base_lr * plateau_factor
    raise ValueError(f"unknown schedule {schedule!r}; choose cosine, plateau or constant")


class Plateau:
    """Reduce-on-plateau: multiply the rate by ``factor`` after ``patience`` evaluations without
    improvement of the validation loss. Its state is a dict, saved with checkpoints."""

    def __init__(self, factor: float = 0.8, patience: int = 5, state: dict | None = None):
        self.factor, self.patience = factor, patience
        self.state = state or {"best": math.inf, "bad": 0, "scale": 1.0}

    def update(self, value: float) -> float:
        if value < self.state["best"]:
            self.state.update(best=value, bad=0)
        else:
            self.state["bad"] += 1
            if self.state["bad"] >= self.patience:
                self.state.update(scale=self.state["scale"] * self.factor, bad=0)
        return self.state["scale"]


def ema_update(ema, params, decay: float, step=None):
    """``ema <- d * ema + (1 - d) * params`` leaf by leaf.

    With ``step`` (number of updates so far), ``d = min(decay, (1 + step) / (10 + step))``, the
    warm-up of TensorFlow's and torch_ema's averages (MACE uses it): early averages do not
    drag the random initialisation along.
    """
    d = decay if step is None else jnp.minimum(decay, (1.0 + step) / (10.0 + step))
    return jax.tree_util.tree_map(lambda e, p: (d * e + (1.0 - d) * p.astype(e.dtype)).astype(e.dtype), ema, params)


def set_learning_rate(opt_state, lr: float):
    """Return ``opt_state`` with its injected learning rate replaced."""
    hyper = dict(opt_state.hyperparams)
    hyper["learning_rate"] = jnp.asarray(lr, dtype=jnp.asarray(hyper["learning_rate"]).dtype)
    return opt_state._replace(hyperparams=hyper)
