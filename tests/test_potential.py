"""Potential: save/load, dtypes, the ASE one-call helper, metadata."""

from __future__ import annotations

import json

import numpy as np
from ase.build import bulk
from conftest import ethanol, make_potential

import jaxpot


def test_save_and_load_round_trip(tmp_path, model_name):
    pot = make_potential(model_name, "float32", seed=3)
    pot.save(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["model"] == model_name and config["symbols"] == ["H", "C", "N", "O", "Si"]
    assert config["e0"][1] == -1029.0 and config["scale"] == 1.3
    # every hyperparameter is written, defaults included, so a later change of a default
    # cannot change a saved model
    defaults = jaxpot.models.hyperparameters(model_name)
    assert set(defaults) - {"num_species", "cutoff"} <= set(config["hparams"])
    loaded = jaxpot.load(tmp_path / "model")
    atoms = ethanol()
    a, b = pot.calculate(atoms), loaded.calculate(atoms)
    assert a["energy"] == b["energy"]
    np.testing.assert_array_equal(a["forces"], b["forces"])
    assert not any(p.suffix == ".pkl" for p in (tmp_path / "model").iterdir())


def test_seed_changes_parameters():
    a, b = make_potential("painn", seed=0), make_potential("painn", seed=1)
    assert a.calculate(ethanol())["energy"] != b.calculate(ethanol())["energy"]


def test_calculate_gives_stress_only_for_periodic():
    pot = make_potential("schnet")
    assert "stress" not in pot.calculate(ethanol())
    r = pot.calculate(bulk("Si", "diamond", a=5.43, cubic=True))
    assert r["stress"].shape == (6,) and r["forces"].shape == (8, 3)


def test_e0_are_added_in_float64():
    pot = make_potential("painn", "float32")
    atoms = ethanol()
    shifted = pot.replace(e0=pot.e0 + 1e-4)
    diff = shifted.calculate(atoms)["energy"] - pot.calculate(atoms)["energy"]
    assert abs(diff - 9e-4) < 1e-9  # 9 atoms x 1e-4 eV, exact despite float32 weights


def test_num_parameters_and_registry():
    assert set(jaxpot.models.available()) >= {"schnet", "painn"}
    pot = jaxpot.Potential.create("painn", ["H", "C", "O"], 5.0)
    assert jaxpot.models.hyperparameters("painn")["features"] == 128
    assert pot.num_parameters > 100_000
