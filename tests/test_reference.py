"""Reference labelling: calculators, sampling, labels, the bundled ethanol set and ``jaxpot label``."""

from __future__ import annotations

import importlib.util
import sys

import ase.io
import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk, molecule
from ase.calculators.emt import EMT

from jaxpot import reference
from jaxpot.cli import main

HAS_TBLITE = importlib.util.find_spec("tblite") is not None
HAS_PYSCF = importlib.util.find_spec("pyscf") is not None
needs_tblite = pytest.mark.skipif(not HAS_TBLITE, reason='tblite is not installed (pip install "jaxpot[reference]")')
needs_pyscf = pytest.mark.skipif(not HAS_PYSCF, reason='pyscf is not installed (pip install "jaxpot[reference]")')

_BUNDLED: list = []


def bundled_frames() -> list[Atoms]:
    if not _BUNDLED:
        _BUNDLED.extend(ase.io.read(reference.ethanol_path(), ":"))
    return _BUNDLED


def test_bundled_ethanol_file():
    path = reference.ethanol_path()
    assert path.is_file() and path.stat().st_size < 2 * 1024**2
    assert (path.parent / "README.md").is_file()
    frames = bundled_frames()
    assert len(frames) >= 500
    for atoms in frames[::97]:
        assert atoms.get_chemical_formula() == "C2H6O" and not atoms.pbc.any()
        r = atoms.calc.results
        assert np.shape(r["energy"]) == () and np.isfinite(r["energy"])
        assert r["forces"].shape == (9, 3) and r["dipole"].shape == (3,) and r["charges"].shape == (9,)
        # an isolated molecule feels no net force, and it is neutral
        assert np.abs(r["forces"].sum(0)).max() < 1e-4 and abs(r["charges"].sum()) < 1e-4
    energies = np.array([a.get_potential_energy() for a in frames])
    assert energies.std() > 0.05 and np.ptp(energies) < 3.0  # thermal spread at 500 K, no dissociation
    with pytest.raises(ValueError, match="ethanol"):
        reference.bundled_path("benzene")


@needs_tblite
def test_bundled_ethanol_labels_are_reproduced_by_tblite():
    frames = bundled_frames()
    picked = [frames[0], frames[len(frames) // 2]]
    fresh = reference.label(picked, reference.calculator("gfn2-xtb"), progress=False)
    for stored, new in zip(picked, fresh):
        r = stored.calc.results
        assert abs(r["energy"] - new.info["energy"]) < 1e-6
        np.testing.assert_allclose(r["forces"], new.arrays["forces"], atol=2e-6)  # 6 decimals written
        np.testing.assert_allclose(r["dipole"], new.info["dipole"], atol=1e-6)
        np.testing.assert_allclose(r["charges"], new.arrays["charges"], atol=2e-6)


def test_calculator_errors(monkeypatch):
    with pytest.raises(ValueError, match="unknown reference method 'dft'"):
        reference.calculator("dft")
    with pytest.raises(ValueError, match="functional/basis"):
        reference.calculator("pyscf:b3lyp")
    monkeypatch.setitem(sys.modules, "tblite", None)
    monkeypatch.setitem(sys.modules, "tblite.ase", None)
    with pytest.raises(ImportError, match=r'pip install "jaxpot\[reference\]"'):
        reference.calculator("gfn2-xtb")


def test_label_with_a_calculator_without_dipole():
    frames = [molecule("CH4"), molecule("CH4")]
    frames[1].rattle(0.05, seed=3)
    frames[0].info["energy"] = 123.0  # stale labels are replaced
    labelled = reference.label(frames, EMT(), progress=False)
    assert len(labelled) == 2 and frames[0].info["energy"] == 123.0  # input left alone
    for atoms, original in zip(labelled, frames):
        assert atoms.calc is None and "dipole" not in atoms.info and "charges" not in atoms.arrays
        check = original.copy()
        check.calc = EMT()
        assert atoms.info["energy"] == pytest.approx(check.get_potential_energy())
        np.testing.assert_allclose(atoms.arrays["forces"], check.get_forces())


def test_write_frames_round_trip(tmp_path):
    si = bulk("Cu", "fcc", a=3.6).repeat((1, 1, 2))
    si.cell[0, 1] += 0.3
    si.pbc = [True, False, True]
    si.rattle(0.05, seed=1)
    frames = reference.label([si, molecule("CH4")], EMT(), progress=False)
    frames[1].info["dipole"] = np.array([0.1, -0.2, 0.3])
    path = reference.write_frames(tmp_path / "f.xyz", frames, digits=6)
    back = ase.io.read(path, ":")
    assert len(back) == 2
    for a, b in zip(frames, back):
        np.testing.assert_allclose(b.cell.array, a.cell.array, atol=1e-12)
        assert (b.pbc == a.pbc).all() and (b.numbers == a.numbers).all()
        np.testing.assert_allclose(b.positions, a.positions, atol=6e-7)
        assert b.get_potential_energy() == a.info["energy"]
        np.testing.assert_allclose(b.get_forces(), a.arrays["forces"], atol=6e-7)
    np.testing.assert_allclose(back[1].calc.results["dipole"], [0.1, -0.2, 0.3])


@needs_tblite
def test_sample_md_h2o():
    calc = reference.calculator("gfn2-xtb")
    h2o = molecule("H2O")
    frames = reference.sample_md(h2o, calc, 300.0, 3, interval=4, equilibration=10, seed=7)
    again = reference.sample_md(h2o, calc, 300.0, 3, interval=4, equilibration=10, seed=7)
    assert len(frames) == 3 and all(f.calc is None and "momenta" not in f.arrays for f in frames)
    assert not np.allclose(frames[0].positions, frames[1].positions)
    for a, b in zip(frames, again):  # the seed fixes velocities and thermostat noise
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-8)
    with pytest.raises(ValueError, match="temperature"):
        reference.sample_md(h2o, calc, -1.0, 3)


@needs_tblite
def test_sample_normal_modes_h2o_and_co2():
    calc = reference.calculator("gfn2-xtb")
    frames = reference.sample_normal_modes(molecule("H2O"), calc, 500.0, 3, seed=1)
    assert len(frames) == 3 and all(len(f) == 3 and f.calc is None for f in frames)
    assert not np.allclose(frames[0].positions, frames[1].positions)

    # harmonic analysis of the optimised molecule: 3N-6 modes (3N-5 for linear CO2), all real
    co2 = molecule("CO2")
    w2, modes = reference.normal_modes(co2, reference.hessian(co2, calc))
    assert len(w2) == 4 and (reference.wavenumbers(w2) > 400).all()

    # the displacements follow the classical Boltzmann distribution: <V_harmonic> = n_modes kT / 2
    eq = molecule("H2O")
    hess = reference.hessian(eq, calc)
    w2, modes = reference.normal_modes(eq, hess)
    assert len(w2) == 3
    d = reference.sampling.displacements(eq, w2, modes, 500.0, 4000, np.random.default_rng(0)).reshape(4000, -1)
    v = 0.5 * np.einsum("ni,ij,nj->n", d, hess, d)
    assert v.mean() == pytest.approx(3 * units.kB * 500.0 / 2, rel=0.05)


@needs_tblite
def test_cli_label_writes_a_readable_file(tmp_path, capsys):
    out = tmp_path / "h2o.xyz"
    args = ["label", "H2O", "--frames", "3", "--interval", "3", "--equilibration", "5", "--quiet", "--out", str(out)]
    assert main(args) == 0
    frames = ase.io.read(out, ":")
    assert len(frames) == 3
    for atoms in frames:
        assert atoms.get_forces().shape == (3, 3) and atoms.calc.results["dipole"].shape == (3,)
    assert '"frames": 3' in capsys.readouterr().out

    nm = tmp_path / "nm.xyz"
    assert main(["label", str(out), "--sample", "normal-modes", "--frames", "2", "--quiet", "--out", str(nm)]) == 0
    assert len(ase.io.read(nm, ":")) == 2
    again = tmp_path / "again.xyz"
    assert main(["label", str(out), "--sample", "none", "--quiet", "--out", str(again)]) == 0
    for a, b in zip(frames, ase.io.read(again, ":")):  # labelling is independent of sampling and order
        assert a.get_potential_energy() == pytest.approx(b.get_potential_energy(), abs=1e-6)


def test_cli_label_errors(tmp_path, capsys):
    assert main(["label", "H2O", "--method", "ccsd(t)", "--out", str(tmp_path / "x.xyz")]) == 2
    assert "unknown reference method" in capsys.readouterr().err
    assert main(["label", "NotAMolecule", "--out", str(tmp_path / "x.xyz")]) == 2
    assert "neither a file nor a molecule name" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["label", "H2O", "--sample", "metadynamics"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert not (tmp_path / "x.xyz").exists()


@needs_pyscf
def test_pyscf_forces_are_the_energy_gradient():
    atoms = molecule("H2O")
    atoms.positions[0, 0] += 0.03
    labelled = reference.label([atoms], reference.calculator("hf/sto-3g"), progress=False)[0]
    assert labelled.info["dipole"].shape == (3,) and abs(labelled.arrays["charges"].sum()) < 1e-8
    h, energies = 1e-4, []
    for sign in (1, -1):
        moved = atoms.copy()
        moved.positions[1, 2] += sign * h
        energies.append(reference.label([moved], reference.calculator("hf/sto-3g"), progress=False)[0].info["energy"])
    assert -(energies[0] - energies[1]) / (2 * h) == pytest.approx(labelled.arrays["forces"][1, 2], abs=1e-5)
