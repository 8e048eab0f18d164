"""Label structures with a reference calculator and write them as compact extended XYZ."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import CalculationFailed, PropertyNotImplementedError

# The canonical label keys (jaxpot.graph.LABEL_KEYS) this module writes.
PER_STRUCTURE = ("energy", "dipole")
PER_ATOM = ("forces", "charges")
LABELS = PER_STRUCTURE + PER_ATOM


def label(frames: Iterable[Atoms], calc, progress: bool = True) -> list[Atoms]:
    """Copies of ``frames`` labelled by ``calc``.

    Each copy gets ``info["energy"]`` (eV), ``arrays["forces"]`` [N, 3] (eV/Å) and, where the
    calculator provides them, ``info["dipole"]`` [3] (e·Å) and ``arrays["charges"]`` [N] (e).
    No calculator is left attached. The calculator is reset before every structure, so each is
    computed from scratch (for SCF methods: from the default guess, not from the previous
    structure's wavefunction) and the labels do not depend on the order of the frames.
    """
    from tqdm.auto import tqdm

    frames = list(frames)
    out = []
    for k, frame in enumerate(tqdm(frames, desc="labelling", unit="frame", disable=not progress, mininterval=1.0)):
        if not isinstance(frame, Atoms) or len(frame) == 0:
            raise ValueError(f"frame {k} is not a non-empty ase.Atoms")
        atoms = frame.copy()
        atoms.calc = None
        for key in LABELS:
            atoms.info.pop(key, None)
            if key in atoms.arrays:
                del atoms.arrays[key]
        calc.reset()
        try:
            energy = float(calc.get_property("energy", atoms))
            forces = np.array(calc.get_property("forces", atoms), dtype=np.float64)
            extra = {}
            for key in ("dipole", "charges"):
                try:
                    value = calc.get_property(key, atoms)
                except PropertyNotImplementedError:
                    continue
                if value is not None:
                    extra[key] = np.array(value, dtype=np.float64)
        except CalculationFailed as err:
            raise CalculationFailed(f"the reference calculation failed on frame {k}: {err}") from err
        if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
            raise CalculationFailed(f"the reference calculation gave NaN/inf on frame {k}")
        atoms.info["energy"] = energy
        atoms.arrays["forces"] = forces.reshape(len(atoms), 3)
        if "dipole" in extra:
            atoms.info["dipole"] = extra["dipole"].reshape(3)
        if "charges" in extra:
            atoms.arrays["charges"] = extra["charges"].reshape(len(atoms))
        out.append(atoms)
    calc.reset()
    return out


def write_frames(path, frames: Sequence[Atoms], digits: int = 6) -> Path:
    """Write frames as extended XYZ with ``digits`` decimals for per-atom columns.

    Positions, forces, charges and other per-atom float arrays get ``digits`` decimals (ASE's
    writer always uses 8 in 16-wide fields, which makes files half as large again); per-structure
    values (energy, dipole, ...) are written by ASE's own key=value formatter at full precision.
    ``ase.io.read`` reads the file back (moving energy/forces/dipole/charges into a
    SinglePointCalculator, as it does for every extxyz). Written atomically.
    """
    from ase.io.extxyz import key_val_dict_to_str

    path = Path(path)
    float_fmt = f"{{:{digits + 5}.{digits}f}}"
    lines = []
    for k, atoms in enumerate(frames):
        arrays = {"species": np.array(atoms.get_chemical_symbols()), "pos": atoms.positions}
        for key, value in atoms.arrays.items():
            if key in ("numbers", "positions"):
                continue
            value = np.asarray(value)
            if value.dtype.kind not in "fiub" or value.ndim > 2:
                raise ValueError(f"frame {k}: cannot write per-atom array {key!r} of dtype {value.dtype}")
            arrays[key] = value
        props, columns = [], []
        for key, value in arrays.items():
            ncol = 1 if value.ndim == 1 else value.shape[1]
            kind = {"U": "S", "S": "S", "f": "R", "i": "I", "u": "I", "b": "L"}[value.dtype.kind]
            props.append(f"{key}:{kind}:{ncol}")
            columns.append((kind, value.reshape(len(atoms), ncol)))
        header = {}
        if atoms.cell.rank > 0 or atoms.pbc.any():
            header["Lattice"] = np.asarray(atoms.cell.array).reshape(-1)  # rows a1 a2 a3
        header["Properties"] = ":".join(props)
        for key, value in atoms.info.items():
            header[key] = value
        header["pbc"] = np.asarray(atoms.pbc)
        lines.append(f"{len(atoms)}\n{key_val_dict_to_str(header)}\n")
        for i in range(len(atoms)):
            row = []
            for kind, col in columns:
                for x in col[i]:
                    if kind == "R":
                        row.append(float_fmt.format(x))
                    elif kind == "S":
                        row.append(f"{x:<2s}")
                    elif kind == "L":
                        row.append("T" if x else "F")
                    else:
                        row.append(f"{int(x):d}")
            lines.append(" ".join(row) + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(lines))
    os.replace(tmp, path)
    return path
