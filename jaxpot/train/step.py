"""Jitted training and evaluation steps, data-parallel over the local devices.

A step takes a stack of D padded batches (leading axis D = number of devices, sharded along a
1-D mesh axis "batch"); per-device squared-error sums and counts are added before dividing,
so the loss equals that of the D batches taken together on one device.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxpot.potential import energy_and_forces, energy_forces_stress, predict as predict_outputs
from jaxpot.train.losses import squared_errors, weighted_loss
from jaxpot.train.optim import ema_update, set_learning_rate


class TrainState(NamedTuple):
    """Everything a step changes: a pytree, checkpointed as a whole."""

    step: jnp.ndarray
    params: Any
    opt_state: Any
    ema_params: Any


def make_predict(energy_fn: Callable, stress: bool, *, outputs_fn: Callable | None = None,
                 forces: bool = True) -> Callable:
    """``(params, graph) -> {"energy", "forces"[, "stress"]}``.

    With ``outputs_fn`` (``Potential.outputs_fn``, a potential with tensor heads) the heads'
    outputs ("dipole", "polarizability", "charges") come from the same forward pass, and
    ``forces=False`` skips the backward pass (data without force labels).
    """
    if outputs_fn is not None:
        return predict_outputs(outputs_fn, forces=forces or stress, stress=stress)
    if stress:
        efs = energy_forces_stress(energy_fn)

        def predict(params, graph):
            e, f, s = efs(params, graph)
            return {"energy": e, "forces": f, "stress": s}
    else:
        ef = energy_and_forces(energy_fn)

        def predict(params, graph):
            e, f = ef(params, graph)
            return {"energy": e, "forces": f}

    return predict


def _per_batch(fn: Callable, params, batches, mesh: Mesh | None = None):
    """``fn(params, batch)`` for each batch along the leading (device) axis, stacked again.

    Each device's batch is taken out of the stack (``shard_map`` over ``mesh``'s "batch" axis,
    or directly for one batch) rather than vmapped: XLA:CPU compiles a vmap of the model
    (batched gathers, scatters and scans) into markedly slower code (a PaiNN training step on
    10 ethanol molecules: 18 % slower per epoch). Without a mesh, D > 1 batches are vmapped.
    """

    def one(p, stacked):
        out = fn(p, jax.tree_util.tree_map(lambda x: x[0], stacked))
        return jax.tree_util.tree_map(lambda x: x[None], out)

    num = batches.n_node.shape[0]
    if num == 1:
        return one(params, batches)
    if mesh is not None and mesh.size == num:
        # check_vma=False: models' scans start from constant carries (zeros), which the
        # varying-axis check would reject inside shard_map; gradients of the replicated
        # params are then summed over devices by the conservative transpose.
        return jax.shard_map(one, mesh=mesh, in_specs=(PartitionSpec(), PartitionSpec("batch")),
                             out_specs=PartitionSpec("batch"), check_vma=False)(params, batches)
    return jax.vmap(lambda g: fn(params, g))(batches)


def _stacked_terms(predict, params, batches, mesh: Mesh | None = None):
    terms = _per_batch(lambda p, g: squared_errors(predict(p, g), g), params, batches, mesh)
    return {k: (jnp.sum(s), jnp.sum(c)) for k, (s, c) in terms.items()}


# dtype of the loss a train step returns (and takes back as ``previous_loss``), so every call
# of the step sees the same argument types and compiles once.
LOSS_DTYPE = jax.dtypes.canonicalize_dtype(jnp.float64)


def make_train_step(predict: Callable, optimizer, ema_decay: float, mesh: Mesh | None = None) -> Callable:
    """``step(state, batches, weights, previous_loss=None, learning_rate=None) -> (state, loss, terms)``,
    jitted, the state donated.

    A NaN loss keeps the old state. Passing the loss the previous step returned as
    ``previous_loss`` makes that stop sticky on the device: once a loss is not finite, every
    later step keeps the state and returns NaN, so a host that reads losses a few steps late
    (the trainer does, to keep the device busy) still stops with the last good state.
    ``mesh``: the devices the batches are sharded over (``device_mesh``), one batch each.
    ``learning_rate`` (a float) replaces the optimiser's injected learning rate for this step
    (``set_learning_rate`` inside the step: done on the host, it cost a device transfer and
    ~0.4 ms per step, 2 % of a PaiNN step).
    """
    return jax.jit(_train_step(predict, optimizer, ema_decay, mesh), donate_argnums=0)


def _train_step(predict: Callable, optimizer, ema_decay: float, mesh: Mesh | None) -> Callable:
    """The step of ``make_train_step``, not jitted (``make_train_steps`` scans it)."""

    def step(state: TrainState, batches, weights, previous_loss=None, learning_rate=None):
        if learning_rate is not None:
            state = state._replace(opt_state=set_learning_rate(state.opt_state, learning_rate))

        def loss_fn(params):
            terms = _stacked_terms(predict, params, batches, mesh)
            return weighted_loss(terms, weights), terms

        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)

        def update() -> TrainState:
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
            params = jax.tree_util.tree_map(lambda p, u: p + u.astype(p.dtype), state.params, updates)
            ema = ema_update(state.ema_params, params, ema_decay, state.step)
            return TrainState(state.step + 1, params, opt_state, ema)

        finite = jnp.isfinite(loss)
        if previous_loss is not None:
            finite = finite & jnp.isfinite(previous_loss)
        # A cond, not an element-wise select over every leaf (~5 % of a PaiNN step on CPU), and
        # the update inside it: computed outside, its results were copied into the state's
        # buffers (0.45 of 1.3 ms for Adam on PaiNN's 577k parameters).
        new = jax.lax.cond(finite, update, lambda: state)
        loss = jnp.where(finite, loss, jnp.nan).astype(LOSS_DTYPE)
        return new, loss, terms

    return step


def make_train_steps(predict: Callable, optimizer, ema_decay: float, mesh: Mesh | None = None) -> Callable:
    """K training steps in one jitted call (``lax.scan`` over ``make_train_step``'s step):

    ``steps(state, batches, weights, previous_loss, learning_rates, active)
    -> (state, last_loss, losses, terms)``

    with ``batches`` the K stacks of one step each ([K, D, ...], ``stack_steps``),
    ``learning_rates`` [K] and ``active`` [K] bool. An inactive step is skipped (a ``cond``:
    nothing is computed, the state is kept, its loss is ``previous_loss``), so the end of an
    epoch or of ``max_steps`` needs no second compilation. ``losses`` [K] are the steps'
    losses, ``last_loss`` the last active one (to pass as the next call's ``previous_loss``).
    The parameters are those of K calls of the single step.

    Why: each call of a jitted step on XLA:CPU allocates its buffers afresh and pays the
    dispatch, and the host's Python work competes with the step for the cores. Inside one
    loop the buffers are reused. A PaiNN training step on 10 ethanol molecules (2 cores):
    17.3 ms called one by one, 15.0 ms as calls of 5 or 10 steps.
    """
    step = _train_step(predict, optimizer, ema_decay, mesh)

    def steps(state: TrainState, batches, weights, previous_loss, learning_rates, active):
        first = jax.tree_util.tree_map(lambda x: x[0], batches)
        no_terms = jax.tree_util.tree_map(
            lambda a: jnp.zeros(a.shape, a.dtype),
            jax.eval_shape(step, state, first, weights, previous_loss, learning_rates[0])[2])

        def body(carry, inputs):
            state, previous = carry
            batch, learning_rate, on = inputs
            state, loss, terms = jax.lax.cond(
                on, lambda: step(state, batch, weights, previous, learning_rate), lambda: (state, previous, no_terms))
            return (state, loss), (loss, terms)

        (state, last), (losses, terms) = jax.lax.scan(body, (state, previous_loss), (batches, learning_rates, active))
        return state, last, losses, terms

    return jax.jit(steps, donate_argnums=0)


def make_eval_step(predict: Callable, mesh: Mesh | None = None) -> Callable:
    """``eval(params, batches) -> predictions`` with the leading device axis kept."""
    return jax.jit(lambda params, batches: _per_batch(predict, params, batches, mesh))


def device_mesh(num_devices: int | None = None) -> Mesh:
    devices = jax.local_devices()
    n = len(devices) if num_devices is None else num_devices
    if n > len(devices):
        raise ValueError(f"asked for {n} devices but only {len(devices)} are visible")
    return Mesh(np.array(devices[:n]), ("batch",))


def replicate(tree, mesh: Mesh):
    """Place a pytree (the train state) replicated on every device of the mesh, as the step
    returns it, so the first and later calls share one compilation."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


# Geometry goes to the model's dtype; labels stay float64 (a float32 total energy of -4209 eV
# is only good to 0.5 meV).
_GEOMETRY = {("nodes", "positions"), ("edges", "shifts"), ("globals", "cell")}


def stack_batches(batches: list, mesh: Mesh, dtype) -> Any:
    """Stack D host batches along a new leading axis and shard it over the mesh.

    For a one-device mesh the stack stays in host (numpy) arrays: the jitted step copies them
    to the device in its C++ dispatch, where ``jax.device_put`` costs ~0.4 ms of Python per
    batch, taken from the cores the previous step is running on (~3 % of a PaiNN step on 2
    cores). The step then compiles for host inputs, once, as before.
    """
    return _place(_host_stack(batches, dtype), mesh, PartitionSpec("batch"))


def stack_steps(groups: list[list], mesh: Mesh, dtype) -> Any:
    """The inputs of ``make_train_steps``: K groups of D host batches as one [K, D, ...] stack,
    the D axis sharded over the mesh (host arrays for one device, as ``stack_batches``)."""
    stacks = [_host_stack(group, dtype) for group in groups]
    stacked = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *stacks)
    return _place(stacked, mesh, PartitionSpec(None, "batch"))


def _host_stack(batches: list, dtype) -> Any:
    """D host batches as one numpy stack [D, ...], geometry cast to ``dtype``."""
    stacked = jax.tree_util.tree_map(lambda *xs: np.stack(xs) if len(xs) > 1 else np.asarray(xs[0])[None], *batches)

    def cast(field: str, key: str, x):
        x = np.asarray(x)
        return x.astype(dtype) if (field, key) in _GEOMETRY else x

    fields = {f: {k: cast(f, k, v) for k, v in getattr(stacked, f).items()} for f in ("nodes", "edges", "globals")}
    rest = {f: np.asarray(getattr(stacked, f)) for f in ("senders", "receivers", "n_node", "n_edge")}
    return stacked._replace(**fields, **rest)


def _place(stacked, mesh: Mesh, spec: PartitionSpec):
    if mesh.size == 1:
        return stacked
    return jax.device_put(stacked, NamedSharding(mesh, spec))


def empty_like(batch):
    """A batch of the same shapes with no real graph (fills the last device group of an epoch)."""
    n_node = np.zeros_like(batch.n_node)
    n_edge = np.zeros_like(batch.n_edge)
    n_node[0] = np.sum(batch.n_node)
    n_edge[0] = np.sum(batch.n_edge)
    return batch._replace(n_node=n_node, n_edge=n_edge)
