"""Reproducible random splits of a data set into disjoint index sets."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def split(n: int, sizes: Sequence[int | float | None], seed: int = 0) -> tuple[np.ndarray, ...]:
    """Split ``range(n)`` into disjoint random subsets, the same for the same ``(n, sizes, seed)``.

    Args:
      n: number of structures.
      sizes: either counts (ints, e.g. ``[950, 50]``) or fractions of ``n`` (floats in [0, 1],
        e.g. ``[0.8, 0.1, 0.1]``); one entry may be ``None`` for "all the rest". Fractions are
        turned into counts by flooring their running sums, so fractions that sum to 1 use
        every structure.
      seed: the permutation is ``numpy.random.default_rng(seed).permutation(n)``; subsets are
        consecutive slices of it, in the order of ``sizes``.

    Returns:
      One sorted int64 index array per entry of ``sizes``.

    Raises:
      ValueError: counts that add up to more than ``n``, fractions outside [0, 1] or adding up
        to more than 1, counts and fractions mixed, more than one ``None``.
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"split() needs n >= 0, got {n}")
    sizes = list(sizes)
    if not sizes:
        raise ValueError("split() needs at least one size")
    if sum(s is None for s in sizes) > 1:
        raise ValueError(f"sizes {sizes}: at most one entry may be None ('the rest')")
    given = [s for s in sizes if s is not None]
    is_int = [isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in given]
    is_float = [isinstance(s, (float, np.floating)) for s in given]
    if not all(a or b for a, b in zip(is_int, is_float)):
        raise ValueError(f"sizes {sizes}: each entry must be an int count, a float fraction or None")
    if any(is_int) and any(is_float):
        raise ValueError(f"sizes {sizes} mixes counts (int) and fractions (float); use one kind")

    if any(is_float):
        fractions = [float(s) for s in given]
        if any(not 0.0 <= f <= 1.0 for f in fractions):
            raise ValueError(f"fractions {sizes} must lie in [0, 1]")
        if sum(fractions) > 1.0 + 1e-9:
            raise ValueError(f"fractions {sizes} add up to {sum(fractions):.6g} > 1")
        bounds = np.floor(np.cumsum(fractions) * n + 1e-9).astype(np.int64)
        counts_given = np.diff(np.concatenate([[0], np.minimum(bounds, n)])).tolist()
    else:
        counts_given = [int(s) for s in given]
        if any(c < 0 for c in counts_given):
            raise ValueError(f"sizes {sizes} must not be negative")
        if sum(counts_given) > n:
            raise ValueError(
                f"sizes {sizes} add up to {sum(counts_given)} structures, more than the {n} available"
            )
    rest = n - sum(counts_given)
    it = iter(counts_given)
    counts = [rest if s is None else next(it) for s in sizes]

    perm = np.random.default_rng(seed).permutation(n)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return tuple(np.sort(perm[a:b]).astype(np.int64) for a, b in zip(bounds[:-1], bounds[1:]))
