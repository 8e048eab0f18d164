"""jaxpot.data: readers (keys, units, virial, MD17 npz), splits, statistics and the GraphLoader."""

from __future__ import annotations

from pathlib import Path

import ase.io
import jax
import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator
from ase.neighborlist import neighbor_list as ase_neighbor_list

import jaxpot
from jaxpot import data
from jaxpot.graph import from_atoms

# Real data files live in the team's shared folder, next to the repository (never copied into it).
SHARED_DATA = Path(__file__).parents[2] / "shared" / "data"
needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"shared data folder {SHARED_DATA} does not exist on this machine"
)

KCAL = units.kcal / units.mol


def _labelled(atoms: Atoms, rng, **extra) -> Atoms:
    atoms = atoms.copy()
    atoms.info["REF_energy"] = float(rng.normal())
    atoms.arrays["REF_forces"] = rng.normal(size=(len(atoms), 3))
    for k, v in extra.items():
        atoms.info[k] = v
    return atoms


def _molecules(rng, n: int = 12) -> list[Atoms]:
    names = ["H2O", "CH4", "CH3OH", "C2H6", "CH3CH2OH", "HCOOH", "CO2", "H2"]
    out = []
    for k in range(n):
        a = molecule(names[k % len(names)])
        a.positions += rng.normal(scale=0.03, size=a.positions.shape)
        a.info["energy"] = float(rng.normal())
        a.arrays["forces"] = rng.normal(size=(len(a), 3))
        out.append(a)
    return out


# ----------------------------------------------------------------------------------------
# readers
# ----------------------------------------------------------------------------------------


def test_read_custom_keys_and_units(tmp_path, rng):
    frames = [
        _labelled(molecule("CH3OH"), rng, my_mu=rng.normal(size=3), my_alpha=rng.normal(size=(3, 3))),
        _labelled(molecule("H2O"), rng, my_mu=rng.normal(size=3), my_alpha=rng.normal(size=(3, 3))),
    ]
    path = tmp_path / "custom.xyz"
    ase.io.write(path, frames, format="extxyz")
    keys = {"energy": "REF_energy", "forces": "REF_forces", "dipole": "my_mu", "polarizability": "my_alpha"}
    got = data.read(path, keys=keys, units={"energy": "kcal/mol", "length": "Bohr"})
    assert len(got) == 2
    for a, ref in zip(got, frames):
        assert a.calc is None
        np.testing.assert_allclose(a.positions, ref.positions * units.Bohr)
        np.testing.assert_allclose(a.info["energy"], ref.info["REF_energy"] * KCAL)
        np.testing.assert_allclose(a.arrays["forces"], ref.arrays["REF_forces"] * KCAL / units.Bohr)
        np.testing.assert_allclose(a.info["dipole"], ref.info["my_mu"] * units.Bohr)
        np.testing.assert_allclose(a.info["polarizability"], ref.info["my_alpha"] * units.Bohr**3)
        assert "REF_energy" not in a.info and "REF_forces" not in a.arrays
    # the canonical labels are what graph.from_atoms reads
    g = from_atoms(got, 4.0, [1, 6, 8], labels=True)
    np.testing.assert_allclose(g.globals["energy"][:2], [a.info["energy"] for a in got])
    np.testing.assert_allclose(g.nodes["forces"][: len(got[0])], got[0].arrays["forces"])
    np.testing.assert_allclose(g.globals["polarizability"][1], got[1].info["polarizability"])

    # explicit per-label units: Debye for the dipole, meV for the energy, nm for lengths
    got = data.read(path, 0, keys=keys, units={"energy": "meV", "length": "nm", "dipole": "Debye"})
    np.testing.assert_allclose(got[0].info["energy"], frames[0].info["REF_energy"] * 1e-3)
    np.testing.assert_allclose(got[0].positions, frames[0].positions * 10)
    np.testing.assert_allclose(got[0].arrays["forces"], frames[0].arrays["REF_forces"] * 1e-4)
    np.testing.assert_allclose(got[0].info["dipole"], frames[0].info["my_mu"] * units.Debye)
    np.testing.assert_allclose(got[0].info["polarizability"], frames[0].info["my_alpha"] * 1000)


def test_read_calculator_labels_and_hartree(tmp_path, rng):
    si = bulk("Si", "diamond", a=5.43) * (2, 1, 1)
    stress = rng.normal(size=6)
    si.calc = SinglePointCalculator(si, energy=-1.5, forces=rng.normal(size=(len(si), 3)), stress=stress)
    path = tmp_path / "si.extxyz"
    ase.io.write(path, si)
    (a,) = data.read(path, units={"energy": "Hartree", "length": "Bohr"})
    assert a.calc is None
    np.testing.assert_allclose(a.cell.array, si.cell.array * units.Bohr)
    np.testing.assert_allclose(a.info["energy"], -1.5 * units.Hartree)
    np.testing.assert_allclose(a.arrays["forces"], si.calc.results["forces"] * units.Hartree / units.Bohr)
    assert a.info["stress"].shape == (3, 3)
    expected = jaxpot.validation.voigt_to_matrix(stress) * units.Hartree / units.Bohr**3
    np.testing.assert_allclose(a.info["stress"], expected)


@pytest.mark.parametrize("layout", ["3x3", "9", "voigt"])
def test_virial_becomes_stress(tmp_path, rng, layout):
    cell = bulk("Cu", "fcc", a=3.6, cubic=True)
    cell.rattle(0.01, seed=1)
    w = rng.normal(size=(3, 3))
    w = w + w.T
    value = {"3x3": w, "9": w.reshape(9), "voigt": jaxpot.validation.matrix_to_voigt(w)}[layout]
    key = "W_voigt" if layout == "voigt" else "virial"  # ASE insists that "virial" has 9 values
    cell.info[key] = value
    cell.info["energy"] = -3.0
    path = tmp_path / "virial.xyz"
    ase.io.write(path, cell, format="extxyz")
    # "virial" is read by default when there is no stress
    (a,) = data.read(path, keys={"virial": key} if layout == "voigt" else None)
    np.testing.assert_allclose(a.info["stress"], -w / cell.get_volume())
    assert key not in a.info
    # lengths in nm, energies in kcal/mol: the volume is taken in Å^3 after conversion
    (b,) = data.read(path, keys={"virial": key}, units={"energy": "kcal/mol", "length": "nm"})
    np.testing.assert_allclose(b.info["stress"], -w * KCAL / (cell.get_volume() * 1000))


def test_read_errors(tmp_path, rng):
    frames = [_labelled(molecule("H2O"), rng, my_mu=rng.normal(size=3)) for _ in range(3)]
    frames[1].info["my_mu"] = np.array([1.0, 2.0])  # wrong shape in frame 1
    path = tmp_path / "bad.xyz"
    ase.io.write(path, frames, format="extxyz")
    with pytest.raises(ValueError, match=r"frame 1 of .*bad\.xyz.*'dipole' has shape \(2,\)"):
        data.read(path, keys={"dipole": "my_mu"})
    with pytest.raises(ValueError, match=r"no key 'energy_dft'.*REF_energy.*REF_forces"):
        data.read(path, keys={"energy": "energy_dft"})
    with pytest.raises(ValueError, match="unknown energy unit 'kcal'"):
        data.read(path, units={"energy": "kcal"})
    with pytest.raises(ValueError, match="unknown label"):
        data.read(path, keys={"enrgy": "REF_energy"})
    molecule_with_virial = molecule("H2O")
    molecule_with_virial.info["virial"] = np.eye(3)
    ase.io.write(tmp_path / "mol_virial.xyz", molecule_with_virial, format="extxyz")
    with pytest.raises(ValueError, match="virial needs a periodic cell"):
        data.read(tmp_path / "mol_virial.xyz")


@pytest.mark.parametrize("layout", ["rMD17", "MD17"])
def test_md17_npz(tmp_path, rng, layout):
    z = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
    coords = molecule("CH3CH2OH").positions[None] + rng.normal(scale=0.05, size=(5, 9, 3))
    energies = rng.normal(size=5) - 97000.0
    forces = rng.normal(size=(5, 9, 3))
    path = tmp_path / f"{layout}.npz"
    if layout == "rMD17":
        np.savez(path, nuclear_charges=z, coords=coords, energies=energies, forces=forces, old_indices=np.arange(5))
    else:
        np.savez(path, z=z.astype(np.uint8), R=coords, E=energies[:, None], F=forces, name="ethanol")
    frames = data.read(path, "1:4")  # read() dispatches .npz files
    assert len(frames) == 3
    for a, k in zip(frames, [1, 2, 3]):
        np.testing.assert_array_equal(a.numbers, z)
        np.testing.assert_allclose(a.positions, coords[k])
        np.testing.assert_allclose(a.info["energy"], energies[k] * KCAL)
        np.testing.assert_allclose(a.arrays["forces"], forces[k] * KCAL)
        assert a.calc is None and not a.pbc.any()
    assert len(data.read_md17_npz(path)) == 5
    (last,) = data.read_md17_npz(path, -1, units={"energy": "eV"})
    np.testing.assert_allclose(last.info["energy"], energies[-1])


def test_md17_npz_unknown_layout(tmp_path):
    np.savez(tmp_path / "x.npz", numbers=np.ones(2), positions=np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match=r"neither MD17 layout.*\['numbers', 'positions'\]"):
        data.read_md17_npz(tmp_path / "x.npz")


# ----------------------------------------------------------------------------------------
# splits
# ----------------------------------------------------------------------------------------


def test_split_reproducible_and_disjoint():
    a = data.split(100, [70, 20, 10], seed=3)
    b = data.split(100, [70, 20, 10], seed=3)
    c = data.split(100, [70, 20, 10], seed=4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert [len(x) for x in a] == [70, 20, 10]
    np.testing.assert_array_equal(np.sort(np.concatenate(a)), np.arange(100))
    train, val = data.split(1000, [950, None], seed=0)
    assert len(train) == 950 and len(val) == 50 and not set(train) & set(val)
    f = data.split(10, [0.8, 0.1, 0.1], seed=0)
    assert [len(x) for x in f] == [8, 1, 1]
    with pytest.raises(ValueError, match="more than the 10 available"):
        data.split(10, [8, 3])
    with pytest.raises(ValueError, match="add up to"):
        data.split(10, [0.8, 0.3])
    with pytest.raises(ValueError, match="mixes counts"):
        data.split(10, [5, 0.5])


# ----------------------------------------------------------------------------------------
# statistics
# ----------------------------------------------------------------------------------------


def test_fit_e0_recovers_reference_energies(rng):
    species = ["H", "C", "O"]
    e0 = np.array([-13.6, -1029.5, -2042.0])
    structures = []
    for _ in range(20):
        counts = rng.integers(1, 5, size=3)
        numbers = np.repeat([1, 6, 8], counts)
        a = Atoms(numbers=numbers, positions=rng.uniform(0, 6, size=(len(numbers), 3)))
        a.info["energy"] = float(counts @ e0)
        structures.append(a)
    np.testing.assert_allclose(data.fit_e0(structures, species), e0, rtol=0, atol=1e-9)
    # labels on an attached calculator are read too; per-atom residual and force RMS
    for a in structures:
        a.calc = SinglePointCalculator(a, energy=a.info.pop("energy") + 0.5 * len(a), forces=np.full((len(a), 3), 2.0))
    np.testing.assert_allclose(data.fit_e0(structures, species), e0 + 0.5, atol=1e-9)
    np.testing.assert_allclose(data.per_atom_energy_rms(structures, species, e0), 0.5, atol=1e-9)
    np.testing.assert_allclose(data.force_rms(structures), 2.0)
    isolated = [Atoms(s, info={"energy": e, "config_type": "IsolatedAtom"}) for s, e in zip(species, e0)]
    np.testing.assert_allclose(data.e0_from_isolated_atoms(structures + isolated, species), e0)
    with pytest.raises(ValueError, match=r"no isolated-atom frame.*\['O'\]"):
        data.e0_from_isolated_atoms(isolated[:2], species)
    stats = data.statistics(structures, species, 3.0)
    assert stats["species"] == species and stats["num_structures"] == 20
    np.testing.assert_allclose(stats["per_atom_energy_rms"], 0.0, atol=1e-9)
    np.testing.assert_allclose(stats["force_rms"], 2.0)


def test_average_num_neighbors_matches_ase():
    structures = [molecule("CH3CH2OH"), bulk("Si", "diamond", a=5.43), bulk("Cu", "fcc", a=3.6) * (2, 1, 1)]
    structures[0].positions += np.random.default_rng(0).normal(scale=0.02, size=(9, 3))
    cutoff = 4.5
    pairs = sum(len(ase_neighbor_list("i", a, cutoff)) for a in structures)
    atoms = sum(len(a) for a in structures)
    assert data.average_num_neighbors(structures, cutoff) == pytest.approx(pairs / atoms)


# ----------------------------------------------------------------------------------------
# GraphLoader
# ----------------------------------------------------------------------------------------


def _shapes(batch) -> list:
    return [(jax.tree_util.keystr(p), x.shape, x.dtype) for p, x in jax.tree_util.tree_leaves_with_path(batch)]


def test_loader_epochs_cover_every_structure_once(rng):
    structures = _molecules(rng, 13)
    structures[3].info["dipole"] = np.ones(3)  # a label only one structure has
    loader = data.GraphLoader(structures, 3.0, ["H", "C", "O"], batch_size=4, seed=7)
    assert loader.budget[2] == 5
    shapes = None
    orders = []
    for e in range(3):
        batches = list(loader.epoch(e))
        assert len(batches) == loader.num_batches(e) == len(loader.batch_indices(e))
        for b in batches:
            shapes = shapes or _shapes(b)
            assert _shapes(b) == shapes  # one shape and one pytree structure for every batch
            assert b.nodes["positions"].shape[0] == loader.budget[0]
            assert "dipole" in b.globals and "weight_dipole" in b.globals
        seen = np.concatenate(loader.batch_indices(e))
        assert sorted(seen.tolist()) == list(range(13))
        orders.append(seen)
    assert not np.array_equal(orders[0], orders[1])
    # same (seed, epoch) -> same order, also in a new loader; resuming skips to step k
    again = data.GraphLoader(structures, 3.0, ["H", "C", "O"], batch_size=4, seed=7, prefetch=0)
    np.testing.assert_array_equal(np.concatenate(again.batch_indices(1)), orders[1])
    resumed = list(again.epoch(1, start=2))
    full = list(loader.epoch(1))
    assert len(resumed) == len(full) - 2
    for x, y in zip(resumed, full[2:]):
        jax.tree_util.tree_map(np.testing.assert_array_equal, x, y)
    # the energies in the batches are the structures' energies, in the epoch's order
    first = full[0]
    idx = loader.batch_indices(1)[0]
    np.testing.assert_allclose(first.globals["energy"][: len(idx)], [structures[i].info["energy"] for i in idx])
    dip = [b.globals["weight_dipole"] for b in full]
    assert sum(float(w.sum()) for w in dip) == 1.0


def test_loader_budgets_and_errors(rng):
    structures = _molecules(rng, 10)
    loader = data.GraphLoader(structures, 3.0, ["H", "C", "O"], batch_size=8, max_atoms=20, shuffle=False)
    assert loader.budget[0] == 20
    for idx in loader.batch_indices(0):
        assert sum(len(structures[i]) for i in idx) <= 19
    np.testing.assert_array_equal(np.concatenate(loader.batch_indices(0)), np.arange(10))
    with pytest.raises(ValueError, match=r"structure 4 has 9 atoms .*max_atoms=9"):
        data.GraphLoader(structures, 3.0, ["H", "C", "O"], batch_size=2, max_atoms=9)
    with pytest.raises(ValueError, match=r"structure 0 has \d+ edges"):
        data.GraphLoader(structures, 3.0, ["H", "C", "O"], batch_size=2, max_edges=1)
    dropped = data.GraphLoader(structures, 3.0, ["H", "C", "O"], batch_size=4, drop_last=True)
    assert len(dropped) == 2 and all(len(i) == 4 for i in dropped.batch_indices(0))


def test_loader_compiles_once(rng):
    structures = _molecules(rng, 11)
    pot = jaxpot.Potential.create("schnet", ["H", "C", "O"], 4.0, features=8, num_interactions=1)
    traces = []

    def energy(params, graph):
        traces.append(1)  # runs only while tracing
        return pot.energy_fn(params, graph)

    fn = jax.jit(energy)
    loader = data.GraphLoader(structures, 4.0, ["H", "C", "O"], batch_size=3, max_atoms=24)
    count = 0
    for _ in range(2):
        for batch in loader:
            fn(pot.params, pot.prepare(batch)).block_until_ready()
            count += 1
    assert count >= 8
    assert len(traces) == 1


# ----------------------------------------------------------------------------------------
# real files (need ../shared/data)
# ----------------------------------------------------------------------------------------


@needs_shared_data
def test_shared_3bpa_isolated_atoms_and_loader():
    # uses ../shared/data/3bpa/iso_atoms.xyz and 3bpa/train_300K.xyz (first 40 frames)
    iso = data.read(SHARED_DATA / "3bpa" / "iso_atoms.xyz")
    e0 = data.e0_from_isolated_atoms(iso, ["H", "C", "N", "O"])
    np.testing.assert_allclose(e0, [-13.587222780835477, -1029.4889999855063, -1484.9814568572233, -2041.9816003861047])
    train = data.read(SHARED_DATA / "3bpa" / "train_300K.xyz", ":40")
    assert len(train) == 40 and all(len(a) == 27 and a.calc is None for a in train)
    assert train[0].arrays["forces"].shape == (27, 3)
    stats = data.statistics(train, ["H", "C", "N", "O"], 5.0, e0=e0)
    assert 0.1 < stats["force_rms"] < 5.0
    loader = data.GraphLoader(train, 5.0, ["H", "C", "N", "O"], batch_size=16)
    assert len(loader) == 3 and loader.budget[2] == 17


@needs_shared_data
def test_shared_periodic_stress_and_virial():
    # uses ../shared/data/periodic_mlearn/Si_test.xyz (stress, ASE Voigt) and
    # ../shared/data/periodic_misc/carbon_gap17_reduced_100.xyz (info "virial" in eV, forces under "force")
    si = data.read(SHARED_DATA / "periodic_mlearn" / "Si_test.xyz", ":3")
    raw = ase.io.read(SHARED_DATA / "periodic_mlearn" / "Si_test.xyz", 0)
    np.testing.assert_allclose(si[0].info["stress"], raw.get_stress(voigt=False))
    carbon = data.read(SHARED_DATA / "periodic_misc" / "carbon_gap17_reduced_100.xyz", ":5", keys={"forces": "force"})
    raw = ase.io.read(SHARED_DATA / "periodic_misc" / "carbon_gap17_reduced_100.xyz", 0)
    np.testing.assert_allclose(carbon[0].info["stress"], -np.reshape(raw.info["virial"], (3, 3)) / raw.get_volume())
    np.testing.assert_allclose(carbon[0].arrays["forces"], raw.arrays["force"])
    g = from_atoms(carbon, 4.0, [6], labels=True)
    assert g.globals["stress"].shape[1:] == (3, 3) and g.globals["weight_stress"][:5].all()


@needs_shared_data
def test_shared_dipole_polarizability_in_atomic_units():
    # uses ../shared/data/dipole_polar/qm7x_reduced_100_CHNO_dipole_polarizability.xyz (info mu, alpha in a.u.)
    path = SHARED_DATA / "dipole_polar" / "qm7x_reduced_100_CHNO_dipole_polarizability.xyz"
    got = data.read(path, ":4", keys={"dipole": "mu", "polarizability": "alpha"},
                    units={"dipole": "a.u.", "polarizability": "a.u."})
    raw = ase.io.read(path, 0)
    np.testing.assert_allclose(got[0].info["dipole"], raw.info["mu"] * units.Bohr)
    np.testing.assert_allclose(got[0].info["polarizability"], raw.info["alpha"].reshape(3, 3) * units.Bohr**3)
    np.testing.assert_allclose(got[0].positions, raw.positions)  # positions stay in Å
