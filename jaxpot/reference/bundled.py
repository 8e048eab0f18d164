"""Small data sets shipped with jaxpot (``jaxpot/data/bundled/``; how each was made is in the
README.md next to them)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

BUNDLED = {
    "ethanol": "ethanol_gfn2xtb.xyz",  # 1000 frames, Langevin MD at 500 K, GFN2-xTB labels
}


def bundled_path(name: str = "ethanol") -> Path:
    """Path of a bundled extended-XYZ data set (``ase.io.read(path, ":")`` reads it)."""
    if name not in BUNDLED:
        raise ValueError(f"no bundled data set {name!r}; available: {sorted(BUNDLED)}")
    resource = files("jaxpot").joinpath("data", "bundled", BUNDLED[name])
    path = Path(str(resource))
    if not path.is_file():
        raise FileNotFoundError(
            f"bundled data set {name!r} is missing at {path}; reinstall jaxpot (the file ships as package data)"
        )
    return path


def ethanol_path() -> Path:
    """The bundled ethanol set: 1000 GFN2-xTB-labelled frames (energy, forces, dipole, charges)."""
    return bundled_path("ethanol")
