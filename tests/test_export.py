"""jaxpot.export: StableHLO export with symbolic sizes, reloaded and run without the model code."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk, molecule

import jaxpot
from jaxpot.export import export, load_exported


def test_export_reload_matches_potential(tmp_path, monkeypatch):
    pot = jaxpot.Potential.create("painn", ["H", "C", "O", "Si"], 4.0, dtype="float64", features=8,
                                  num_interactions=1, num_rbf=4)
    ethanol = molecule("CH3CH2OH")
    ethanol.rattle(0.05, seed=1)
    si = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    si.rattle(0.05, seed=2)
    refs = [pot.calculate(a) for a in (ethanol, si)]
    out = export(pot, tmp_path / "exported", edge_buckets=[128, 2048], platforms=["cpu"])
    meta = json.loads((out / "exported.json").read_text())
    assert meta["species"] == [1, 6, 8, 14] and meta["cutoff"] == 4.0 and meta["dtype"] == "float64"
    assert "N" in meta["symbolic"] and "G" in meta["symbolic"]
    assert [a["n_edge"] for a in meta["artifacts"]] in ([128, 2048], [None])

    # Loading and running must not build (or even be able to build) the flax model.
    def no_model(*args, **kwargs):
        raise AssertionError("the exported potential built a flax model")

    monkeypatch.setattr(jaxpot.Potential, "build_module", staticmethod(no_model))
    monkeypatch.setattr(jaxpot.models.registry, "build", no_model)
    exported = load_exported(out)
    for atoms, ref in zip((ethanol, si), refs):
        result = exported.calculate(atoms)
        assert result["energy"] == pytest.approx(ref["energy"], abs=1e-9)
        np.testing.assert_allclose(result["forces"], ref["forces"], atol=1e-9)
        assert ("stress" in result) == ("stress" in ref)
        if "stress" in ref:
            np.testing.assert_allclose(result["stress"], ref["stress"], atol=1e-9)
    # Symbolic atom counts: another molecule of a different size runs through the same artifact.
    water = molecule("H2O")
    assert np.isfinite(exported.calculate(water)["energy"])
    with pytest.raises(ValueError, match="max_edges"):
        exported.calculate(bulk("Si", "diamond", a=5.43, cubic=True).repeat(3))


def test_cli_export(tmp_path):
    from jaxpot.cli import main

    pot = jaxpot.Potential.create("schnet", ["H", "O"], 3.0, features=8, num_interactions=1, num_rbf=4)
    pot.save(tmp_path / "model")
    assert main(["export", str(tmp_path / "model"), str(tmp_path / "out"), "--max-edges", "100",
                 "--platforms", "cpu"]) == 0
    exported = load_exported(tmp_path / "out")
    assert exported.edge_capacities in ([64, 128], [None])
    water = molecule("H2O")
    assert exported.calculate(water)["energy"] == pytest.approx(pot.calculate(water)["energy"], abs=1e-5)
