"""From a validated config to a trained, evaluated, saved potential (``jaxpot train``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from jaxpot.train.config import Config, config_to_dict


def _species_of(structures) -> list[int]:
    return sorted({int(z) for atoms in structures for z in atoms.numbers})


def _e0(config: Config, structures, species):
    from jaxpot.data import e0_from_isolated_atoms, fit_e0, read

    spec = config.data.e0
    if spec == "fit" and not any("energy" in a.info for a in structures):
        return np.zeros(len(species))  # data without energies (e.g. polarizabilities only)
    if spec == "fit":
        return fit_e0(structures, species)
    if spec == "isolated":
        return e0_from_isolated_atoms(structures, species)
    if isinstance(spec, dict):
        from ase.data import atomic_numbers

        table = {atomic_numbers.get(k, k): float(v) for k, v in spec.items()}
        missing = [z for z in species if z not in table]
        if missing:
            raise ValueError(f"data.e0 gives no reference energy for atomic numbers {missing}")
        return np.array([table[z] for z in species])
    if isinstance(spec, str) and Path(spec).exists():
        return e0_from_isolated_atoms(read(spec, keys=config.data.keys, units=config.data.units), species)
    raise ValueError(f"data.e0 must be 'fit', 'isolated', a file of isolated atoms or a mapping, got {spec!r}")


def head_properties(properties, structures) -> dict:
    """Head options of ``properties`` with the polarizability head's shift and scale fitted
    to ``structures`` (``jaxpot.heads.polarizability_statistics``) unless given."""
    from jaxpot.heads import polarizability_statistics
    from jaxpot.potential import head_options

    heads = head_options(properties)
    if "polarizability" in heads and any("polarizability" in a.info for a in structures):
        fitted = polarizability_statistics(structures)
        heads["polarizability"] = {**fitted, **heads["polarizability"]}
    return heads


def run(config: Config, *, max_steps: int | None = None) -> dict:
    """Train as configured; write model/, metrics.jsonl, plots and summary.json to config.output."""
    import jaxpot
    from jaxpot.data import GraphLoader, read, split, statistics
    from jaxpot.train.plots import plot_parity
    from jaxpot.train.trainer import evaluate, train

    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    d = config.data
    frames = read(d.train, index=d.index, keys=d.keys, units=d.units)
    held_out: list = []
    if d.valid:
        train_set, valid_set = frames, read(d.valid, keys=d.keys, units=d.units)
    else:
        n_valid = d.n_valid if d.n_valid is not None else max(1, int(round(d.valid_fraction * len(frames))))
        n_test = d.n_test or 0
        n_train = d.n_train if d.n_train is not None else len(frames) - n_valid - n_test
        i_train, i_valid, i_test = split(len(frames), [n_train, n_valid, n_test], seed=d.seed)
        train_set, valid_set = [frames[i] for i in i_train], [frames[i] for i in i_valid]
        held_out = [frames[i] for i in i_test]
    test_set = read(d.test, keys=d.keys, units=d.units) if d.test else (held_out if not d.valid else [])
    if config.model.species:
        from jaxpot.potential import _species_numbers

        species = list(_species_numbers(config.model.species))
    else:
        species = _species_of(train_set + valid_set + test_set)
    e0 = _e0(config, train_set, species)
    stats = statistics(train_set, species, config.model.cutoff, e0=e0)
    (out / "statistics.json").write_text(json.dumps(stats, indent=2, default=float))

    potential = jaxpot.Potential.create(
        config.model.name, species, config.model.cutoff, seed=config.model.seed, e0=e0,
        scale=float(stats["force_rms"]) if stats.get("force_rms") else 1.0,
        dtype=config.model.dtype, properties=head_properties(config.model.properties, train_set),
        **config.model.hparams,
    )
    budget = {"max_atoms": d.max_atoms, "max_edges": d.max_edges}
    train_loader = GraphLoader(train_set, config.model.cutoff, species, d.batch_size, seed=d.seed, **budget)
    valid_loader = GraphLoader(valid_set, config.model.cutoff, species, d.valid_batch_size or d.batch_size, shuffle=False)
    (out / "config.json").write_text(json.dumps(config_to_dict(config), indent=2, default=str))
    print(f"jaxpot: {config.model.name} with {potential.num_parameters:,} parameters; {len(train_set)} training, "
          f"{len(valid_set)} validation, {len(test_set)} test structures; batch budget {train_loader.budget}")
    result = train(potential, train_loader, valid_loader, config.training, out, seed=d.seed, max_steps=max_steps)

    summary = {"stopped": result.stopped, "epochs": len(result.history), "model": str(out / "model")}
    for name, structures in (("valid", valid_set), ("test", test_set)):
        if not structures:
            continue
        loader = GraphLoader(structures, config.model.cutoff, species, d.valid_batch_size or d.batch_size, shuffle=False)
        metrics, errors = evaluate(result.potential, loader, keep_values=True)
        summary[name] = metrics
        ref, pred = errors.parity("energy_per_atom")
        if ref.size:
            plot_parity(ref, pred, "energy per atom", "meV/atom", out / f"parity_energy_{name}.png", scale=1e3)
        ref, pred = errors.parity("forces")
        if ref.size:
            plot_parity(ref, pred, "force component", "meV/Å", out / f"parity_forces_{name}.png", scale=1e3)
        for key, unit in (("dipole", "e·Å"), ("polarizability", "Å³")):
            ref, pred = errors.parity(key)
            if ref.size:
                plot_parity(ref, pred, f"{key} component", unit, out / f"parity_{key}_{name}.png")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary

