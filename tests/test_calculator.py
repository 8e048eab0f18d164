"""jaxpot.Calculator (ASE) and Potential.evaluate (batched inference)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import bulk, molecule
from ase.calculators.calculator import PropertyNotImplementedError

import jaxpot

_POT: dict = {}


def painn(species=("H", "C", "O", "Si")) -> jaxpot.Potential:
    if species not in _POT:
        _POT[species] = jaxpot.Potential.create(
            "painn", list(species), 4.0, dtype="float64", features=8, num_interactions=1, num_rbf=4
        )
    return _POT[species]


def test_calculator_properties_and_ase_md_compiles_a_handful_of_times():
    from ase.md.verlet import VelocityVerlet

    pot = painn()
    atoms = molecule("CH3CH2OH")
    rng = np.random.default_rng(0)
    momenta = rng.normal(size=(len(atoms), 3)) * np.sqrt(atoms.get_masses()[:, None] * units.kB * 300.0)
    atoms.set_momenta(momenta - momenta.mean(axis=0))
    calc = jaxpot.Calculator(pot)
    atoms.calc = calc
    ref = pot.calculate(atoms)
    assert atoms.get_potential_energy() == pytest.approx(ref["energy"], abs=1e-12)
    assert atoms.get_potential_energy(force_consistent=True) == pytest.approx(ref["energy"], abs=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), ref["forces"], atol=1e-12)
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()
    assert "dipole" not in calc.implemented_properties  # no dipole head on PaiNN's energy model
    dynamics = VelocityVerlet(atoms, timestep=0.25 * units.fs)
    shapes = set()
    dynamics.attach(lambda: shapes.add(tuple(len(x) for x in (pot.graph(atoms).senders, pot.graph(atoms).n_node))))
    dynamics.run(200)
    # One compilation per padded shape bucket, not per step. (An untrained model lets the
    # molecule swell and shrink, so its edge count wanders over a few buckets.)
    assert calc.compilations() == len(shapes | {(len(pot.graph(molecule("CH3CH2OH")).senders), 2)})
    assert calc.compilations() <= 6, calc.compilations()


def test_calculator_stress_matches_finite_strain():
    pot = painn()
    atoms = bulk("Si", "diamond", a=5.43)  # primitive cell, several images within the cutoff
    atoms.rattle(0.05, seed=4)
    atoms.calc = jaxpot.Calculator(pot)
    stress = atoms.get_stress(voigt=False)
    cell, volume, h = atoms.cell.array.copy(), atoms.get_volume(), 1e-5
    fd = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            energies = []
            for sign in (1, -1):
                eps = np.zeros((3, 3))
                eps[i, j] += sign * h / 2
                eps[j, i] += sign * h / 2
                strained = atoms.copy()
                strained.set_cell(cell @ (np.eye(3) + eps), scale_atoms=True)
                strained.calc = atoms.calc
                energies.append(strained.get_potential_energy())
            fd[i, j] = (energies[0] - energies[1]) / (2 * h) / volume
    np.testing.assert_allclose(stress, fd, atol=1e-7)
    assert np.abs(stress).max() > 1e-4  # not trivially zero
    np.testing.assert_allclose(atoms.get_stress(), atoms.calc.results["stress"])


def test_evaluate_many_structures_compiles_once():
    pot = painn(("H", "C", "O"))
    frames = []
    for k in range(100):
        atoms = molecule("CH3CH2OH" if k % 3 else "H2O")
        atoms.rattle(0.05, seed=k)
        frames.append(atoms)
    results = pot.evaluate(frames, batch_size=16)
    assert len(results) == 100
    assert pot._cache["energy_and_forces"]._cache_size() <= 2
    for k in (0, 1, 2, 57, 99):
        ref = pot.calculate(frames[k])
        assert results[k]["energy"] == pytest.approx(ref["energy"], abs=1e-9)
        np.testing.assert_allclose(results[k]["forces"], ref["forces"], atol=1e-9)
        assert results[k]["forces"].shape == (len(frames[k]), 3) and "stress" not in results[k]


def test_evaluate_with_stress_on_mixed_structures():
    pot = painn()
    si = bulk("Si", "diamond", a=5.43, cubic=True)
    si.rattle(0.03, seed=1)
    frames = [si, molecule("CH4"), bulk("Si", "diamond", a=5.5)]
    results = pot.evaluate(frames, batch_size=2, stress=True)
    assert "stress" not in results[1]
    for atoms, result in zip(frames, results):
        ref = pot.calculate(atoms)
        assert result["energy"] == pytest.approx(ref["energy"], abs=1e-9)
        np.testing.assert_allclose(result["forces"], ref["forces"], atol=1e-9)
        if "stress" in ref:
            np.testing.assert_allclose(result["stress"], ref["stress"], atol=1e-9)
    assert pot.evaluate([]) == []
