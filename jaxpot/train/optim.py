"""Optimiser, learning-rate schedules and the exponential moving average of parameters."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax


def make_optimizer(name: str = "amsgrad", clip_norm: float | None = 10.0, weight_decay: float = 0.0):
    """Adam or AMSGrad (MACE's default) with global-norm clipping.

    The learning rate is an injected hyperparameter (``opt_state.hyperparams["learning_rate"]``)
    set every step from the host, so warm-up, cosine and plateau schedules all resume exactly.
    """
    base = {"adam": optax.adam, "amsgrad": optax.amsgrad, "adamw": optax.adamw}
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
