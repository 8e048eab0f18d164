"""Element symbols and atomic numbers."""

from __future__ import annotations

from typing import Iterable


def to_atomic_numbers(items: Iterable[int | str]) -> list[int]:
    """Atomic numbers from symbols ("C") or numbers (6); unknown symbols raise ``ValueError``."""
    from ase.data import atomic_numbers

    out = []
    for s in items:
        if isinstance(s, str):
            if s not in atomic_numbers:
                raise ValueError(f"unknown element symbol {s!r}")
            out.append(atomic_numbers[s])
        else:
            out.append(int(s))
    return out
