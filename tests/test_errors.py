"""Bad input gets a clear ValueError before anything is compiled."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from conftest import ethanol

import jaxpot
from jaxpot.graph import from_atoms

SPECIES = [1, 6, 8]


def test_unknown_element():
    atoms = ethanol()
    atoms.numbers[0] = 17
    with pytest.raises(ValueError, match=r"element\(s\) \['Cl'\].*species are \['H', 'C', 'O'\]"):
        from_atoms(atoms, 3.0, SPECIES)


def test_nan_positions():
    atoms = ethanol()
    atoms.positions[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"positions of atoms \[3\] are NaN or infinite"):
        from_atoms(atoms, 3.0, SPECIES)
    atoms.positions[3, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        from_atoms(atoms, 3.0, SPECIES)


def test_overlapping_atoms():
    atoms = Atoms("CO", positions=[[0, 0, 0], [0, 0, 0.01]])
    with pytest.raises(ValueError, match="atoms 0 and 1 are 0.01 Å apart"):
        from_atoms(atoms, 3.0, SPECIES)


def test_overlapping_periodic_images():
    atoms = Atoms("C2", positions=[[0, 0, 0], [3.999, 0, 0]], cell=[4.0, 4.0, 4.0], pbc=True)
    with pytest.raises(ValueError, match="closer than min_distance"):
        from_atoms(atoms, 3.0, SPECIES)


def test_empty_structure():
    with pytest.raises(ValueError, match="empty"):
        from_atoms(Atoms(), 3.0, SPECIES)
    with pytest.raises(ValueError, match="empty list"):
        from_atoms([], 3.0, SPECIES)


def test_singular_cell():
    atoms = Atoms("C2", positions=[[0, 0, 0], [1.5, 0, 0]], cell=[[3, 0, 0], [6, 0, 0], [0, 0, 3]], pbc=True)
    with pytest.raises(ValueError, match="cell is singular"):
        from_atoms(atoms, 3.0, SPECIES)


@pytest.mark.parametrize(
    "key, value, shape",
    [("forces", np.zeros((3, 3)), r"\(9, 3\)"), ("stress", np.zeros(4), r"\(3, 3\)"), ("dipole", np.zeros(2), r"\(3,\)"),
     ("energy", np.zeros(2), r"\(\)")],
)
def test_labels_of_the_wrong_shape(key, value, shape):
    atoms = ethanol()
    atoms.info[key] = value
    with pytest.raises(ValueError, match=rf"label '{key}' has shape .* expected {shape}"):
        from_atoms(atoms, 3.0, SPECIES, labels=True)


def test_nan_label():
    atoms = ethanol()
    atoms.info["energy"] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        from_atoms(atoms, 3.0, SPECIES, labels=True)


def test_unknown_model_and_hyperparameter():
    with pytest.raises(ValueError, match="unknown model 'painnn'.*registered models"):
        jaxpot.models.build("painnn")
    with pytest.raises(ValueError, match=r"unknown hyperparameter\(s\) \['n_features'\].*'features'"):
        jaxpot.Potential.create("painn", ["H"], 5.0, n_features=3)


def test_bad_species_and_dtype():
    with pytest.raises(ValueError, match="unknown element symbol 'Xx'"):
        jaxpot.Potential.create("schnet", ["H", "Xx"])
    with pytest.raises(ValueError, match="twice"):
        jaxpot.Potential.create("schnet", ["H", "H"])
    with pytest.raises(ValueError, match="dtype"):
        jaxpot.Potential.create("schnet", ["H"], dtype="float16")


def test_error_comes_before_compilation():
    pot = jaxpot.Potential.create("schnet", ["H", "C", "O"], 3.0, features=8, num_interactions=1)
    atoms = ethanol()
    atoms.numbers[0] = 14
    with pytest.raises(ValueError, match="Si"):
        pot.calculate(atoms)
    assert not any(k.startswith("energy") for k in pot._cache), "nothing was jitted"


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="not a saved jaxpot model"):
        jaxpot.load(tmp_path)
    pot = jaxpot.Potential.create("schnet", ["H", "C", "O"], 3.0, features=8, num_interactions=1)
    pot.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["hparams"]["features"] = 16
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not match|expects"):
        jaxpot.load(tmp_path / "m")


def test_singular_cell_ok_when_not_periodic():
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.pbc = False
    atoms.cell = np.zeros((3, 3))
    g = from_atoms(atoms, 3.0, [14])
    assert g.n_node[0] == 2
