"""Read labelled structures from files into ``ase.Atoms`` with jaxpot's canonical labels.

Every reader returns plain ``ase.Atoms`` in ASE units, with no calculator attached, whose
labels sit under the canonical names that ``jaxpot.graph.from_atoms(..., labels=True)`` reads:

* ``atoms.info``: ``energy`` (float, eV), ``stress`` ([3, 3] eV/Å³, ASE sign: (1/V) dE/dε),
  ``dipole`` ([3] e·Å), ``polarizability`` ([3, 3] Å³);
* ``atoms.arrays``: ``forces`` ([n, 3] eV/Å), ``charges`` ([n] e).

Where the file stores a label under another name, ``keys`` maps the canonical label to the
file's key, e.g. ``keys={"energy": "REF_energy", "forces": "REF_forces"}``. A label is looked
up in ``atoms.info``, then ``atoms.arrays``, then the results of the calculator ASE attached
while reading (extxyz puts ``energy``, ``forces``, ``stress`` there). Labels named in ``keys``
are required in every frame; the others are read when present. A ``virial`` (energy, [3, 3],
9 values or Voigt 6) becomes ``stress = -virial / volume``.
"""

from __future__ import annotations

from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms

from jaxpot.data.units import Conversion, conversion
from jaxpot.validation import check_label, voigt_to_matrix

LABELS = ("energy", "forces", "stress", "virial", "dipole", "polarizability", "charges")
INFO_LABELS = ("energy", "stress", "dipole", "polarizability")
ARRAY_LABELS = ("forces", "charges")


def _resolve_keys(keys: dict[str, str] | None) -> tuple[dict[str, str], set[str]]:
    keys = dict(keys or {})
    unknown = sorted(set(keys) - set(LABELS))
    if unknown:
        raise ValueError(f"keys has unknown label(s) {unknown}; jaxpot reads {list(LABELS)} (label -> file key)")
    return {label: keys.get(label, label) for label in LABELS}, set(keys)


def _present_keys(atoms: Atoms, results: dict) -> str:
    info = sorted(atoms.info)
    arrays = sorted(k for k in atoms.arrays if k not in ("numbers", "positions"))
    return f"info {info}, arrays {arrays}, calculator results {sorted(results)}"


def _virial_matrix(value, name: str) -> np.ndarray:
    v = np.asarray(value, dtype=np.float64)
    if v.shape == (6,):
        v = voigt_to_matrix(v)
    elif v.shape == (9,):
        v = v.reshape(3, 3)
    if v.shape != (3, 3):
        raise ValueError(f"{name}: label 'virial' has shape {v.shape}, expected (3, 3), 9 values or Voigt 6.")
    if not np.isfinite(v).all():
        raise ValueError(f"{name}: label 'virial' contains NaN or infinite values.")
    return v


def canonical_atoms(
    atoms: Atoms,
    keys: dict[str, str] | None = None,
    units: dict[str, str] | Conversion | None = None,
    name: str = "structure",
) -> Atoms:
    """One structure with labels under any keys and units -> canonical labels in ASE units.

    Returns a copy without calculator; geometry (positions, cell) and the labels are
    converted, other info/arrays entries are kept as they are (the consumed keys removed).
    """
    keymap, required = _resolve_keys(keys)
    conv = units if isinstance(units, Conversion) else conversion(units)
    results = dict(getattr(atoms.calc, "results", {}) or {}) if atoms.calc is not None else {}
    n = len(atoms)

    found: dict[str, tuple[str, object]] = {}  # label -> (source, key)
    for label, key in keymap.items():
        for source, table in (("info", atoms.info), ("arrays", atoms.arrays), ("calc", results)):
            if key in table:
                found[label] = (source, table[key])
                break
        else:
            if label == "energy" and key == "energy" and "free_energy" in results:
                found[label] = ("calc", results["free_energy"])
            elif label in required:
                raise ValueError(
                    f"{name}: no key {key!r} for label {label!r} (keys={{{label!r}: {key!r}}}); "
                    f"the frame has {_present_keys(atoms, results)}."
                )
    if "stress" in found and "virial" in found:
        if {"stress", "virial"} <= required:
            raise ValueError(f"{name}: keys names both a stress and a virial; give one of them.")
        del found["virial" if "virial" not in required else "stress"]

    labels: dict[str, object] = {}
    for label, (_, value) in found.items():
        if label == "energy":
            labels[label] = float(check_label("energy", value, n, name)) * conv.energy
        elif label == "forces":
            labels[label] = check_label("forces", value, n, name) * conv.forces
        elif label == "stress":
            labels[label] = check_label("stress", value, n, name) * conv.stress
        elif label == "virial":
            virial = _virial_matrix(value, name) * conv.energy
            cell = np.asarray(atoms.cell.array, dtype=np.float64) * conv.length
            volume = abs(float(np.linalg.det(cell)))
            if not np.any(atoms.pbc) or volume < 1e-8:
                raise ValueError(
                    f"{name}: a virial needs a periodic cell with a volume to become a stress "
                    f"(pbc={np.asarray(atoms.pbc).tolist()}, volume {volume:.3g} Å^3)."
                )
            labels["stress"] = -virial / volume
        elif label == "dipole":
            labels[label] = check_label("dipole", value, n, name) * conv.dipole
        elif label == "polarizability":
            labels[label] = check_label("polarizability", value, n, name) * conv.polarizability
        elif label == "charges":
            labels[label] = check_label("charges", value, n, name)

    out = atoms.copy()  # no calculator, info deep-copied
    out.calc = None
    for label in found:
        key = keymap[label]
        out.info.pop(key, None)
        if key not in ("numbers", "positions"):
            out.arrays.pop(key, None)
    if conv.length != 1.0:
        out.arrays["positions"] = out.arrays["positions"] * conv.length  # bypasses constraints
        out.set_cell(np.asarray(atoms.cell.array) * conv.length, scale_atoms=False)
    for label, value in labels.items():
        if label in ARRAY_LABELS:
            out.arrays[label] = np.asarray(value, dtype=np.float64)
        else:
            out.info[label] = value
    return out


def _frame_name(path, index, k: int) -> str:
    if index in (":", None) or index == slice(None):
        return f"frame {k} of {path}"
    return f"frame {k} of the frames index={index!r} of {path}"


def read(
    path,
    index=":",
    keys: dict[str, str] | None = None,
    units: dict[str, str] | None = None,
    *,
    format: str | None = None,
) -> list[Atoms]:
    """Read every structure of a file ASE reads (extended XYZ first) with canonical labels.

    Args:
      path: the file. ``.npz`` files go to ``read_md17_npz``.
      index: frames to read, as ``ase.io.read`` takes it (``":"``, ``"0:100"``, ``-1``, ...).
      keys: canonical label -> the file's key, for labels in
        ``("energy", "forces", "stress", "virial", "dipole", "polarizability", "charges")``;
        named labels must exist in every frame.
      units: the file's units, e.g. ``{"energy": "kcal/mol", "length": "Bohr"}``, optionally
        ``"dipole"``, ``"polarizability"``, ``"stress"`` (see ``jaxpot.data.units``); default
        eV and Å.
      format: ASE format name, when the suffix does not tell.

    Returns:
      A list of ``ase.Atoms`` in ASE units, canonical labels in ``info``/``arrays``, no
      calculator attached.

    Raises:
      ValueError: a key named in ``keys`` is missing (the message lists the keys present),
        a label of the wrong shape (naming the frame and the file), an unknown unit.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if format is None and path.suffix == ".npz":
        if keys:
            raise ValueError(f"{path}: keys are not used for MD17 .npz files (their layout is fixed)")
        return read_md17_npz(path, index, units=units)
    conv = conversion(units)
    _resolve_keys(keys)  # fail on bad keys before reading a large file
    frames = ase.io.read(path, index=index, format=format)
    if isinstance(frames, Atoms):
        frames = [frames]
    return [canonical_atoms(a, keys, conv, _frame_name(path, index, k)) for k, a in enumerate(frames)]


# ----------------------------------------------------------------------------------------
# MD17 / rMD17 npz
# ----------------------------------------------------------------------------------------

RMD17_KEYS = ("nuclear_charges", "coords", "energies", "forces")
MD17_KEYS = ("z", "R", "E", "F")


def _select(index, n: int) -> np.ndarray:
    if isinstance(index, str):
        from ase.io.formats import string2index

        index = string2index(index)
    if isinstance(index, (int, np.integer)):
        i = int(index)
        if not -n <= i < n:
            raise IndexError(f"frame {i} out of range for {n} frames")
        return np.array([i % n])
    if isinstance(index, slice):
        return np.arange(n)[index]
    idx = np.asarray(index, dtype=np.int64).reshape(-1)
    if len(idx) and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"frame indices out of range for {n} frames")
    return idx % n


def read_md17_npz(path, index=":", units: dict[str, str] | None = None) -> list[Atoms]:
    """Read an MD17-family ``.npz`` into ``ase.Atoms`` with canonical labels in ASE units.

    Two layouts are recognised:

    * rMD17 (Christensen & von Lilienfeld 2020): ``nuclear_charges`` [n], ``coords`` [F, n, 3] Å,
      ``energies`` [F] kcal/mol, ``forces`` [F, n, 3] kcal/mol/Å;
    * original MD17 / sGDML: ``z`` [n], ``R`` [F, n, 3] Å, ``E`` [F] or [F, 1] kcal/mol,
      ``F`` [F, n, 3] kcal/mol/Å; the file's ``e_unit``/``r_unit`` and ``lattice`` (periodic)
      are honoured when present.

    Args:
      path: the ``.npz`` file.
      index: frames (an int, a slice, ``"0:100"``-style string or an array of indices).
      units: override the file's units, e.g. ``{"energy": "eV"}``.
    """
    path = Path(path)
    with np.load(path, allow_pickle=False) as data:
        present = set(data.files)
        if set(RMD17_KEYS) <= present:
            layout, (kz, kr, ke, kf) = "rMD17", RMD17_KEYS
            file_units = {"energy": "kcal/mol", "length": "Å"}
        elif {"z", "R", "E"} <= present:
            layout, (kz, kr, ke, kf) = "MD17", MD17_KEYS
            file_units = {
                "energy": str(data["e_unit"]) if "e_unit" in present else "kcal/mol",
                "length": str(data["r_unit"]) if "r_unit" in present else "Å",
            }
        else:
            raise ValueError(
                f"{path} is in neither MD17 layout: rMD17 needs keys {list(RMD17_KEYS)}, original "
                f"MD17/sGDML needs {list(MD17_KEYS)}; the file has {sorted(present)}."
            )
        conv = conversion(file_units | dict(units or {}))
        numbers = np.asarray(data[kz], dtype=np.int64).reshape(-1)
        coords = np.asarray(data[kr], dtype=np.float64)
        energies = np.asarray(data[ke], dtype=np.float64)
        forces = np.asarray(data[kf], dtype=np.float64) if kf in present else None
        lattice = np.asarray(data["lattice"], dtype=np.float64) if layout == "MD17" and "lattice" in present else None

    n_frames, n_atoms = coords.shape[0], len(numbers)
    if coords.shape != (n_frames, n_atoms, 3):
        raise ValueError(f"{path}: {kr!r} has shape {coords.shape}, expected (frames, {n_atoms}, 3) for {kz!r} of {n_atoms} atoms.")
    if energies.size != n_frames:
        raise ValueError(f"{path}: {ke!r} has shape {energies.shape}, expected ({n_frames},) or ({n_frames}, 1).")
    energies = energies.reshape(n_frames)
    if forces is not None and forces.shape != coords.shape:
        raise ValueError(f"{path}: {kf!r} has shape {forces.shape}, expected {coords.shape} like {kr!r}.")

    out = []
    for k in _select(index, n_frames):
        atoms = Atoms(numbers=numbers, positions=coords[k] * conv.length)
        if lattice is not None:
            atoms.set_cell(lattice.reshape(3, 3) * conv.length)
            atoms.pbc = True
        name = f"frame {int(k)} of {path}"
        atoms.info["energy"] = float(check_label("energy", energies[k], n_atoms, name)) * conv.energy
        if forces is not None:
            atoms.arrays["forces"] = check_label("forces", forces[k], n_atoms, name) * conv.forces
        out.append(atoms)
    return out
