"""Training: learning, resume after a kill, two devices, NaN stop, config validation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import ethanol

import jaxpot
from jaxpot.data import GraphLoader
from jaxpot.train import TrainingOptions, evaluate, train
from jaxpot.train.config import config_from_dict, load_config

REPO = Path(__file__).resolve().parents[1]


def toy_data(n: int = 24, seed: int = 0):
    """Ethanol frames labelled with ASE's EMT (cheap, smooth, learnable)."""
    from ase.calculators.emt import EMT

    frames = []
    for k in range(n):
        atoms = ethanol(seed=seed + k, rattle=0.08)
        atoms.calc = EMT()
        atoms.info["energy"] = atoms.get_potential_energy()
        atoms.arrays["forces"] = atoms.get_forces()
        atoms.calc = None
        frames.append(atoms)
    return frames


def small_potential(seed: int = 0):
    return jaxpot.Potential.create("schnet", ["H", "C", "O"], 4.0, features=8, num_interactions=1, num_rbf=8, seed=seed)


def test_training_reduces_the_error(tmp_path):
    frames = toy_data(24)
    pot = jaxpot.Potential.create("schnet", ["H", "C", "O"], 4.0, features=16, num_interactions=2, num_rbf=8)
    train_loader = GraphLoader(frames[:20], 4.0, pot.species, 4, seed=0)
    valid_loader = GraphLoader(frames[20:], 4.0, pot.species, 4, shuffle=False)
    before = evaluate(pot, valid_loader)[0]["forces_mae"]
    options = TrainingOptions(epochs=6, learning_rate=2e-2, progress=False, swa_start=None)
    result = train(pot, train_loader, valid_loader, options, tmp_path / "run")
    after = evaluate(result.potential, valid_loader)[0]["forces_mae"]
    assert after < 0.5 * before
    assert (tmp_path / "run" / "model" / "config.json").exists()
    assert (tmp_path / "run" / "learning_curves.png").stat().st_size > 1000
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == list(range(6))
    loaded = jaxpot.load(tmp_path / "run" / "model")
    assert np.isfinite(loaded.calculate(frames[0])["energy"])


SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np
    sys.path.insert(0, {tests!r})
    from test_train import toy_data, small_potential
    from jaxpot.data import GraphLoader
    from jaxpot.train import TrainingOptions, train
    frames = toy_data(16)
    pot = small_potential()
    result = train(pot, GraphLoader(frames[:12], 4.0, pot.species, 2, seed=3),
                   GraphLoader(frames[12:], 4.0, pot.species, 4, shuffle=False),
                   TrainingOptions(epochs={epochs}, learning_rate=3e-3, checkpoint_every=2, progress=False,
                                   schedule="cosine", swa_start=0.5, steps_per_call=4),
                   {out!r})
    print("DONE", result.stopped)
    """
)


def _run(out: Path, epochs: int, kill_after_checkpoint: bool = False) -> subprocess.CompletedProcess | None:
    code = SCRIPT.format(tests=str(REPO / "tests"), epochs=epochs, out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not kill_after_checkpoint:
        stdout, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, stdout
        return stdout
    deadline = time.time() + 600
    ckpt = out / "checkpoints"
    while time.time() < deadline:
        steps = [p for p in ckpt.glob("[0-9]*")] if ckpt.exists() else []
        if any(int(p.name) >= 8 for p in steps if p.name.isdigit()):
            break
        if proc.poll() is not None:
            raise AssertionError("training finished before it could be killed: " + proc.stdout.read())
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return None


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    _run(reference, epochs=4)
    _run(killed, epochs=4, kill_after_checkpoint=True)
    assert not (killed / "last_model").exists(), "the run was killed before it finished"
    out = _run(killed, epochs=4)
    assert "resuming from step" in out and "DONE finished" in out
    a, b = jaxpot.load(reference / "last_model"), jaxpot.load(killed / "last_model")
    for x, y in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    epochs = [json.loads(line)["epoch"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [0, 1, 2, 3]


def test_two_devices_give_the_loss_of_one(tmp_path):
    code = textwrap.dedent(
        f"""
        import sys, json, numpy as np, jax
        sys.path.insert(0, {str(REPO / 'tests')!r})
        import jaxpot
        import jaxpot.models.schnet as schnet_model
        from test_train import toy_data, small_potential
        schnet_model.EDGE_CHUNK = 64  # several chunks per batch: the edge sums' scans run inside shard_map
        from jaxpot.data import GraphLoader
        from jaxpot.train import TrainingOptions, train
        from jaxpot.train.optim import make_optimizer, set_learning_rate
        from jaxpot.train.step import TrainState, device_mesh, make_predict, make_train_step, replicate, stack_batches
        import jax.numpy as jnp
        assert len(jax.local_devices()) == 2
        frames = toy_data(8)
        pot = small_potential()
        batches = list(GraphLoader(frames, 4.0, pot.species, 4, shuffle=False).epoch(0))
        opt = make_optimizer()
        step = make_train_step(make_predict(pot.energy_fn, False), opt, 0.99)
        weights = {{"energy": jnp.asarray(1.0, jnp.float32), "forces": jnp.asarray(100.0, jnp.float32)}}
        out = {{}}
        for n, per_device in ((1, False), (2, False), (2, True)):  # one batch; vmapped; shard_map over the mesh
            mesh = device_mesh(n)
            params = jax.tree_util.tree_map(jnp.array, pot.params)
            state = replicate(TrainState(jnp.asarray(0), params, opt.init(params), jax.tree_util.tree_map(jnp.copy, params)), mesh)
            stacked = stack_batches(batches, mesh, jnp.float32)
            run = make_train_step(make_predict(pot.energy_fn, False), opt, 0.99, mesh) if per_device else step
            state, loss, _ = run(state, stacked, weights)
            out["sharded" if per_device else n] = (float(loss), [np.asarray(x).tolist() for x in jax.tree_util.tree_leaves(state.params)][:2])
        res = train(pot, GraphLoader(frames, 4.0, pot.species, 2, seed=0), None,
                    TrainingOptions(epochs=1, devices=2, progress=False), {str(tmp_path / 'dp')!r})
        print(json.dumps({{"one": out[1][0], "two": out[2][0], "p1": out[1][1], "p2": out[2][1],
                           "sharded": out["sharded"][0], "p_sharded": out["sharded"][1],
                           "ndev": len(jax.local_devices()), "stopped": res.stopped}}))
        """
    )
    env = dict(os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ndev"] == 2 and result["stopped"] == "finished"
    for two in ("two", "sharded"):
        assert abs(result["one"] - result[two]) <= 1e-5 * abs(result["one"]), two
    np.testing.assert_allclose(np.array(result["p1"][0]), np.array(result["p2"][0]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.array(result["p1"][0]), np.array(result["p_sharded"][0]), rtol=1e-5, atol=1e-6)


def test_nan_loss_stops_and_keeps_last_good_state(tmp_path):
    frames = toy_data(8)
    pot = small_potential()
    options = TrainingOptions(epochs=5, learning_rate=1e25, optimizer="adam", clip_norm=None, progress=False)
    result = train(pot, GraphLoader(frames, 4.0, pot.species, 2, seed=0), None, options, tmp_path / "nan")
    assert result.stopped == "nan"
    assert any((tmp_path / "nan" / "checkpoints").iterdir()), "the last good state is checkpointed"
    for leaf in jax.tree_util.tree_leaves(jaxpot.load(tmp_path / "nan" / "last_model").params):
        assert np.all(np.isfinite(leaf))


class PoisonedLoader:
    """A GraphLoader whose batch ``bad`` of epoch 0 has a NaN energy label (and the rest are fine)."""

    def __init__(self, loader, bad: int):
        self.loader, self.bad = loader, bad

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def epoch(self, epoch: int, start: int = 0):
        for k, batch in enumerate(self.loader.epoch(epoch, start=start), start=start):
            if epoch == 0 and k == self.bad:
                batch = batch._replace(globals={**batch.globals, "energy": np.full_like(batch.globals["energy"], np.nan)})
            yield batch


def test_nan_read_late_keeps_the_state_of_the_last_good_step(tmp_path):
    """The trainer reads each loss a few steps after dispatching it. Steps dispatched after a NaN
    (here batch 2 of 4; batch 3 is fine and already dispatched when the NaN is read) must not move
    the state, so the run ends with the parameters of a run stopped just before the NaN step."""
    from jaxpot.train.checkpoint import Checkpoints

    frames = toy_data(8)
    options = TrainingOptions(epochs=2, learning_rate=1e-2, progress=False)
    species = small_potential().species
    result = train(small_potential(), PoisonedLoader(GraphLoader(frames, 4.0, species, 2, seed=0), bad=2), None,
                   options, tmp_path / "nan")
    assert result.stopped == "nan"
    assert Checkpoints(tmp_path / "nan" / "checkpoints").latest_step() == 2
    reference = train(small_potential(), GraphLoader(frames, 4.0, species, 2, seed=0), None, options,
                      tmp_path / "stopped", max_steps=2)
    assert reference.stopped == "max_steps"
    a, b = jaxpot.load(tmp_path / "nan" / "last_model"), jaxpot.load(tmp_path / "stopped" / "last_model")
    for x, y in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)):
        np.testing.assert_array_equal(x, y)


def test_train_step_compiles_once(tmp_path, monkeypatch):
    """Every call of the steps in a run, the first and an epoch's partial last one included
    (3 steps per epoch, 2 per call), sees the same argument types and shardings (the loss fed
    back as ``previous_loss`` too), so the steps compile once."""
    from jaxpot.train import trainer

    steps = []

    def recording(*args, **kwargs):
        steps.append(make_train_steps(*args, **kwargs))
        return steps[-1]

    make_train_steps = trainer.make_train_steps
    monkeypatch.setattr(trainer, "make_train_steps", recording)
    pot = small_potential()
    train(pot, GraphLoader(toy_data(6), 4.0, pot.species, 2, seed=0), None,
          TrainingOptions(epochs=2, progress=False, steps_per_call=2), tmp_path / "run")
    assert len(steps) == 1 and steps[0]._cache_size() == 1


def test_steps_in_one_call_equal_single_steps():
    """``make_train_steps`` over K = 4 slots with 3 active steps ends with the parameters and
    losses of 3 calls of the single step; the inactive slot changes nothing."""
    import jax.numpy as jnp

    from jaxpot.train.optim import make_optimizer
    from jaxpot.train.step import (LOSS_DTYPE, TrainState, device_mesh, empty_like, make_predict,
                                   make_train_step, make_train_steps, replicate, stack_batches, stack_steps)

    pot = small_potential()
    batches = list(GraphLoader(toy_data(6), 4.0, pot.species, 2, shuffle=False).epoch(0))
    assert len(batches) == 3
    opt = make_optimizer()
    mesh = device_mesh(1)
    weights = {"energy": jnp.asarray(1.0, jnp.float32), "forces": jnp.asarray(100.0, jnp.float32)}
    rates = [3e-3, 2e-3, 1e-3]

    def fresh():
        params = jax.tree_util.tree_map(jnp.array, pot.params)
        return replicate(TrainState(jnp.asarray(0), params, opt.init(params), jax.tree_util.tree_map(jnp.copy, params)), mesh)

    step = make_train_step(make_predict(pot.energy_fn, False), opt, 0.99)
    single, loss, singles = fresh(), jnp.zeros((), LOSS_DTYPE), []
    for batch, rate in zip(batches, rates):
        single, loss, _ = step(single, stack_batches([batch], mesh, jnp.float32), weights, loss, rate)
        singles.append(float(loss))
    steps = make_train_steps(make_predict(pot.energy_fn, False), opt, 0.99)
    call = [[b] for b in batches] + [[empty_like(batches[0])]]
    state, last, losses, _ = steps(fresh(), stack_steps(call, mesh, jnp.float32), weights, jnp.zeros((), LOSS_DTYPE),
                                   np.array(rates + [5e-3]), np.array([True, True, True, False]))
    assert int(state.step) == 3 and float(last) == singles[-1]
    np.testing.assert_allclose(np.asarray(losses)[:3], singles, rtol=1e-6)
    for x, y in zip(jax.tree_util.tree_leaves(single), jax.tree_util.tree_leaves(state)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)


def test_train_step_after_a_nan_keeps_the_state():
    import jax.numpy as jnp

    from jaxpot.train.optim import make_optimizer
    from jaxpot.train.step import TrainState, device_mesh, make_predict, make_train_step, replicate, stack_batches

    pot = small_potential()
    batch = next(iter(GraphLoader(toy_data(2), 4.0, pot.species, 2, shuffle=False).epoch(0)))
    opt = make_optimizer()
    step = make_train_step(make_predict(pot.energy_fn, False), opt, 0.99)
    mesh = device_mesh(1)
    weights = {"energy": jnp.asarray(1.0, jnp.float32), "forces": jnp.asarray(100.0, jnp.float32)}
    stacked = stack_batches([batch], mesh, jnp.float32)

    def fresh():
        params = jax.tree_util.tree_map(jnp.array, pot.params)
        return replicate(TrainState(jnp.asarray(0), params, opt.init(params), jax.tree_util.tree_map(jnp.copy, params)), mesh)

    before = jax.tree_util.tree_map(np.asarray, fresh())
    state, loss, _ = step(fresh(), stacked, weights, jnp.asarray(np.nan))
    assert np.isnan(float(loss))
    for x, y in zip(jax.tree_util.tree_leaves(before), jax.tree_util.tree_leaves(state)):
        np.testing.assert_array_equal(x, np.asarray(y))
    state, loss, _ = step(fresh(), stacked, weights, jnp.asarray(0.0))
    assert np.isfinite(float(loss)) and int(state.step) == 1


def test_config_names_unknown_and_mistyped_keys(tmp_path):
    with pytest.raises(ValueError, match=r"unknown key\(s\) in training: 'learning_rat' \(did you mean 'learning_rate'\?\)"):
        config_from_dict({"data": {"train": "x.xyz"}, "training": {"learning_rat": 0.1}})
    with pytest.raises(ValueError, match=r"unknown key\(s\) in the config: 'modle'"):
        config_from_dict({"modle": {}, "data": {"train": "x.xyz"}})
    with pytest.raises(ValueError, match=r"training.epochs must be int"):
        config_from_dict({"data": {"train": "x.xyz"}, "training": {"epochs": "ten"}})
    with pytest.raises(ValueError, match=r"unknown model.hparams for 'painn': 'feature' \(did you mean 'features'\?\)"):
        config_from_dict({"model": {"hparams": {"feature": 8}}, "data": {"train": "x.xyz"}})
    with pytest.raises(ValueError, match="data.train is required"):
        config_from_dict({})
    with pytest.raises(ValueError, match="unknown model"):
        config_from_dict({"model": {"name": "painn2"}, "data": {"train": "x.xyz"}})
    path = tmp_path / "c.yaml"
    path.write_text("model: {name: schnet, cutoff: 4}\ndata: {train: a.xyz}\ntraining: {epochs: 3, weights: {energy: 1}}\n")
    config = load_config(path)
    assert config.model.cutoff == 4.0 and config.training.epochs == 3
    with pytest.raises(ValueError, match="unknown quantities"):
        config_from_dict({"data": {"train": "x.xyz"}, "training": {"weights": {"energie": 1.0}}})


def test_amsgrad_is_pytorchs():
    """jaxpot's AMSGrad follows torch.optim.Adam(amsgrad=True) (MACE's optimiser): the maximum of
    the raw second moment, bias-corrected afterwards. Gradients that shrink after a large first
    step tell it apart from optax.amsgrad, which keeps that first step in its denominator."""
    import optax

    from jaxpot.train.optim import make_optimizer, set_learning_rate

    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=3) * 10.0 ** (-k / 5) for k in range(30)]
    # torch/optim/adam.py (_single_tensor_adam, amsgrad=True), transcribed
    p, m, v, vmax, expected = np.ones(3), np.zeros(3), np.zeros(3), np.zeros(3), []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        p = p - lr / (1 - b1**t) * m / (np.sqrt(vmax) / np.sqrt(1 - b2**t) + eps)
        expected.append(p)

    def run(opt, state):
        params, out = jax.numpy.ones(3, jax.numpy.float64), []
        for g in grads:
            updates, state = opt.update(jax.numpy.asarray(g), state, params)
            params = optax.apply_updates(params, updates)
            out.append(np.asarray(params))
        return np.array(out)

    ours = make_optimizer("amsgrad", clip_norm=None)  # its learning rate is injected: set it
    ours_state = set_learning_rate(ours.init(jax.numpy.ones(3)), lr)
    np.testing.assert_allclose(run(ours, ours_state), np.array(expected), rtol=1e-6, atol=1e-9)
    theirs = optax.amsgrad(lr)
    assert np.abs(run(theirs, theirs.init(jax.numpy.ones(3))) - np.array(expected)).max() > 1e-3
