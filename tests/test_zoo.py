"""Every registered model trains with jaxpot's trainer and runs in jax-md (DESIGN.md: a model is
done when it passes the conformance suite, trains, and runs in jax-md)."""

from __future__ import annotations

import numpy as np
import pytest

import jaxpot
import jaxpot.md as md
from jaxpot.data import GraphLoader, fit_e0, force_rms
from jaxpot.train import TrainingOptions, train
from test_train import toy_data

pytestmark = pytest.mark.filterwarnings("ignore:scatter inputs have incompatible types:FutureWarning")

SPECIES = ["H", "C", "O"]


@pytest.mark.parametrize("model_name", jaxpot.models.available())  # all, the approximately equivariant too
def test_trains_and_runs_in_jax_md(model_name, tmp_path):
    frames = toy_data(8, seed=40)
    pot = jaxpot.Potential.create(
        model_name, SPECIES, 4.0, seed=1, e0=fit_e0(frames, SPECIES), scale=force_rms(frames),
        **jaxpot.models.small_hyperparameters(model_name),
    )
    loader = GraphLoader(frames, 4.0, SPECIES, 4, seed=0)
    options = TrainingOptions(epochs=12, learning_rate=1e-2, optimizer="adam", schedule="constant", ema_decay=0.0,
                              swa_start=None, weights={"energy": 1.0, "forces": 10.0}, progress=False)
    result = train(pot, loader, None, options, tmp_path / "run")
    losses = [h["train_loss"] for h in result.history]
    assert result.stopped == "finished" and np.all(np.isfinite(losses))
    assert losses[-1] < 0.9 * losses[0], f"{model_name}: training did not lower the loss: {losses}"

    # the trained model in jax-md: a short NVE run starts at the Potential's energy and conserves it
    trained = result.potential.astype("float64")
    atoms = frames[0].copy()
    traj = md.simulate(trained, atoms, "nve", temperature=300.0, timestep=0.25, steps=8, write_every=4,
                       seed=0, progress=False)
    assert len(traj) >= 2
    ref = trained.calculate(atoms)  # jax-md's neighbour list (unused slots, skin) gives the same numbers
    np.testing.assert_allclose(traj[0].get_potential_energy(), ref["energy"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(traj[0].get_forces(), ref["forces"], rtol=0, atol=1e-8)
    totals = np.array([f.info["total_energy"] for f in traj])
    assert np.all(np.isfinite(totals))
    assert np.ptp(totals) < 5e-3 * len(atoms), f"{model_name}: NVE total energy moved by {np.ptp(totals)} eV"
