#!/usr/bin/env python
"""MACE accuracy parity on acetylacetone: jaxpot's MACE and mace-torch's, same split, same settings.

Issue 4's check: jaxpot's validation errors within 5 % of mace-torch's (or lower) when both
train the same MACE the same way. The structure is benchmarks/accuracy.py's (PaiNN against
schnetpack), whose helpers it reuses.

The protocol: acetylacetone at 300 K ($DATA/acac/train_300K.xyz, 500 frames of 15 atoms, eV and
eV/Å, BOTNet/MACE benchmark data), split by ``jaxpot.data.split(500, [450, 50], seed)``. The
driver (this process) makes the split, writes the two sets as extxyz files (``REF_energy`` in
``info``, ``REF_forces`` in ``arrays``) into the run folder, fits the per-species reference
energies (``jaxpot.data.fit_e0`` on the training frames: least squares; one molecule, so the
minimum-norm solution with sum_i E0[Z_i] = mean training energy) and the energy scale (RMS of
the training force components: mace's ``rms_forces_scaling`` and ``jaxpot train``'s), computes
``avg_num_neighbors`` on the training frames at r_max (as mace does) and writes everything to
``protocol.json``. Then, one after the other, in fresh subprocesses:

* jaxpot: ``jaxpot.train.train`` (the trainer behind ``jaxpot train``) on
  ``Potential.create("mace", ..., e0=E0, scale=scale)`` with ``GraphLoader`` batches of the
  training frames read back from the same extxyz file;
* mace-torch 0.3.16: benchmarks/peers/mace_torch_train.py with the peer's interpreter
  (/tmp/peers/torch-venv), which runs ``mace_run_train``'s own ``run`` on the same files with
  ``--E0s`` set to the same numbers.

Both: r_max 5 Å, 8 Bessel functions, polynomial envelope p = 5, max_ell 3, 2 interactions,
hidden irreps ``--hidden-irreps`` (default 128x0e+128x1o), correlation 3, MLP_irreps 16x0e,
radial MLP [64, 64, 64]; float32; batch size 5; AMSGrad (mace_run_train cannot switch it off)
at lr 0.01, reduce-on-plateau by 0.8 after 50 epochs without improvement (mace's defaults),
gradient-norm clip 10, no weight decay (mace's 5e-7 default set to 0), EMA only with --ema-decay, no SWA/stage
two; loss ``w_E * MSE(energy per atom) + w_F * MSE(force components)`` with w_E = 1,
w_F = 100 (mace's 'weighted' loss); validation after every epoch. What is not the same:
parameter initialisation (each code its own, the same seed number) and the batch order (each
code's own shuffle of the same 450 frames).

Reported per code (one JSON line each, then a table): validation energy MAE (meV per molecule
and meV/atom) and force MAE (meV/Å) after the last epoch and at the epoch of lowest validation
loss, and the median wall time per training epoch (validation excluded; epoch 0 excluded,
which holds jaxpot's compilation; see benchmarks/peers/epoch_clock.py for the contention
reading). Ratios: jaxpot error / mace-torch error (target <= 1.05) and mace-torch time /
jaxpot time (> 1: jaxpot faster).

Examples:
  # smoke check: 2 epochs on 100 training frames
  python benchmarks/mace_parity.py --quick
  # the comparison
  python benchmarks/mace_parity.py --epochs 30 --out results/mace_parity.jsonl
  # the two codes side by side (each in its own driver; timings contended by each other)
  python benchmarks/mace_parity.py --codes jaxpot --workdir RUN --out RUN/results.jsonl &
  sleep 30; python benchmarks/mace_parity.py --codes mace-torch --workdir RUN --reuse-protocol --out RUN/results.jsonl
  # reprint the table
  python benchmarks/mace_parity.py --table-only results/mace_parity.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from accuracy import ClockedLoader, _f, pin_threads, run_codes  # noqa: E402
from accuracy import REPO, DEFAULT_DATA, PEERS_ENV  # noqa: E402
from epoch_clock import summarize_epochs  # noqa: E402  (accuracy.py put peers/ on sys.path)

PEER_SCRIPT = HERE / "peers" / "mace_torch_train.py"
CODES = ("jaxpot", "mace-torch")
DEFAULT_EPOCHS = 30
QUICK = {"epochs": 2, "train_subset": 100}


# ---------------------------------------------------------------------------------------
# The protocol
# ---------------------------------------------------------------------------------------


def make_protocol(args, run_dir: Path) -> dict:
    import numpy as np
    from ase.io import write

    from jaxpot.data import average_num_neighbors, fit_e0, force_rms, read, split

    frames = read(args.data)
    i_train, i_valid = split(len(frames), [args.n_train, args.n_valid], seed=args.seed)
    if args.train_subset:
        i_train = i_train[: args.train_subset]
    train = [frames[i] for i in i_train]
    valid = [frames[i] for i in i_valid]
    paths = {}
    for name, subset in (("train", train), ("valid", valid)):
        out = []
        for a in subset:
            b = a.copy()  # positions, numbers, cell, pbc; labels under mace's default keys, no calculator
            b.info = {"REF_energy": float(a.info["energy"])}
            b.arrays["REF_forces"] = np.asarray(a.arrays["forces"], np.float64)
            for k in list(b.arrays):
                if k not in ("numbers", "positions", "REF_forces"):
                    del b.arrays[k]
            out.append(b)
        paths[name] = str(run_dir / f"{name}.xyz")
        write(paths[name], out, format="extxyz")
    species = sorted({int(z) for a in frames for z in a.numbers})
    e0 = fit_e0(train, species)
    return {
        "data": str(Path(args.data).resolve()),
        "n_frames": len(frames),
        "seed": args.seed,
        "init_seed": args.seed if args.init_seed is None else args.init_seed,
        "split": f"jaxpot.data.split({len(frames)}, [{args.n_train}, {args.n_valid}], seed={args.seed})"
                 + (f", training set cut to its first {args.train_subset}" if args.train_subset else ""),
        "train_indices": i_train.tolist(),
        "valid_indices": i_valid.tolist(),
        "train_xyz": paths["train"],
        "valid_xyz": paths["valid"],
        "species": species,
        "e0_eV": [float(x) for x in e0],
        "e0_how": "jaxpot.data.fit_e0 on the training frames (least squares, minimum norm for one molecule); "
                  "mace gets them as --E0s",
        "scale": float(force_rms(train)),
        "scale_how": "RMS of the training force components (eV/A): mace's rms_forces_scaling, jaxpot train's scale",
        "avg_num_neighbors": float(average_num_neighbors(train, args.r_max)),
        "model": {"r_max": args.r_max, "num_bessel": args.num_bessel, "num_polynomial_cutoff": 5, "max_ell": 3,
                  "num_interactions": 2, "hidden_irreps": args.hidden_irreps, "correlation": 3,
                  "MLP_irreps": "16x0e", "radial_MLP": [64, 64, 64], "dtype": "float32",
                  "peer_use_reduced_cg": args.peer_reduced_cg},
        "training": {"epochs": args.epochs, "batch_size": args.batch_size, "optimizer": args.optimizer,
                     "learning_rate": args.lr, "schedule": "plateau", "plateau_factor": 0.8,
                     "plateau_patience": args.plateau_patience, "clip_norm": 10.0, "weight_decay": 0.0,
                     "ema_decay": args.ema_decay,
                     "weights": {"energy": args.energy_weight, "forces": args.forces_weight}},
        "threads": args.threads,
        "checks": {"train_energy_sum_eV": float(np.sum([a.info["energy"] for a in train])),
                   "valid_energy_sum_eV": float(np.sum([a.info["energy"] for a in valid]))},
    }


# ---------------------------------------------------------------------------------------
# The jaxpot side (a child process)
# ---------------------------------------------------------------------------------------


def run_jaxpot(args) -> dict:
    t_start = time.perf_counter()
    cpus = pin_threads(args.threads)
    proto = json.loads(Path(args.protocol).read_text())
    hp, tr = proto["model"], proto["training"]

    import resource
    import tempfile

    import jax
    import numpy as np

    compile_events: dict[str, float] = {}

    def on_event(event, duration, **kwargs):
        if event.startswith("/jax/core/compile/"):
            compile_events[event] = compile_events.get(event, 0.0) + float(duration)

    jax.monitoring.register_event_duration_secs_listener(on_event)

    import jaxpot
    from jaxpot.data import GraphLoader, read
    from jaxpot.train import TrainingOptions, train

    keys = {"energy": "REF_energy", "forces": "REF_forces"}
    train_set = read(proto["train_xyz"], keys=keys)
    valid_set = read(proto["valid_xyz"], keys=keys)
    for name, fr in (("train", train_set), ("valid", valid_set)):
        got = float(np.sum([a.info["energy"] for a in fr]))
        if abs(got - proto["checks"][f"{name}_energy_sum_eV"]) > 1e-6 * max(1.0, abs(got)):
            raise SystemExit(f"{name} energies read back from {proto[name + '_xyz']} differ from the protocol's")
    species = proto["species"]
    if args.jaxpot_model == "mace":
        model_hp = {k: hp[k] for k in ("num_bessel", "num_polynomial_cutoff", "max_ell", "num_interactions",
                                       "hidden_irreps", "correlation", "MLP_irreps")}
        model_hp |= {"radial_MLP": tuple(hp["radial_MLP"]), "avg_num_neighbors": proto["avg_num_neighbors"],
                     "product_weights": args.product_weights}
    else:  # another backbone on the same protocol (benchmarks/zoo_accuracy.py)
        model_hp = {}
    model_hp |= json.loads(args.jaxpot_hp or "{}")
    pot = jaxpot.Potential.create(
        args.jaxpot_model, species, hp["r_max"], seed=proto["init_seed"], e0=proto["e0_eV"], scale=proto["scale"],
        shift=0.0, dtype=hp["dtype"], **model_hp,
    )
    t0 = time.perf_counter()
    train_loader = ClockedLoader(GraphLoader(train_set, hp["r_max"], species, tr["batch_size"], seed=proto["seed"]))
    valid_loader = GraphLoader(valid_set, hp["r_max"], species, tr["batch_size"], shuffle=False)
    prep_s = time.perf_counter() - t0

    options = TrainingOptions(
        epochs=tr["epochs"], learning_rate=tr["learning_rate"], optimizer=tr["optimizer"], schedule=tr["schedule"],
        plateau_factor=tr["plateau_factor"], plateau_patience=tr["plateau_patience"], warmup_steps=0,
        clip_norm=tr["clip_norm"], weight_decay=0.0, ema_decay=tr.get("ema_decay", 0.0), weights=dict(tr["weights"]),
        swa_start=None,
        eval_every=1, checkpoint_every=10**9, keep_checkpoints=1, progress=False,
    )
    out = Path(args.workdir) / "jaxpot_run"
    if out.exists():  # the trainer would resume from an old checkpoint
        out = Path(tempfile.mkdtemp(prefix="jaxpot_run_", dir=args.workdir))
    t_train = time.perf_counter()
    result = train(pot, train_loader, valid_loader, options, out, seed=proto["seed"])
    train_wall_s = time.perf_counter() - t_train

    w_e, w_f = float(tr["weights"]["energy"]), float(tr["weights"]["forces"])
    history = []
    for rec, clock in zip(result.history, train_loader.records):
        v = rec.get("valid", {})
        history.append({"epoch": rec["epoch"], "lr": rec["lr"], "train_loss": rec["train_loss"],
                        "epoch_time_s": clock["wall_s"], "other_busy_cores": clock["other_busy_cores"],
                        "valid": {**v, "valid_loss": w_e * v["energy_per_atom_rmse"] ** 2 + w_f * v["forces_rmse"] ** 2}})
    if args.history:
        Path(args.history).write_text("".join(json.dumps(h) + "\n" for h in history))

    def errors(rec):
        v = rec["valid"]
        return {"epoch": rec["epoch"], "energy_mae_meV": v["energy_mae"] * 1e3, "forces_mae_meV_A": v["forces_mae"] * 1e3,
                "energy_rmse_meV": v["energy_rmse"] * 1e3, "forces_rmse_meV_A": v["forces_rmse"] * 1e3,
                "energy_per_atom_mae_meV": v["energy_per_atom_mae"] * 1e3, "valid_loss": v["valid_loss"]}

    best = min(history, key=lambda r: r["valid"]["valid_loss"]) if history else None
    timing = summarize_epochs(train_loader.records[: len(history)])
    return {
        "code": "jaxpot",
        "model": args.jaxpot_model,
        "model_hp": {k: (list(v) if isinstance(v, tuple) else v) for k, v in model_hp.items()},
        "stopped": result.stopped,
        "epochs": len(history),
        "epochs_asked": tr["epochs"],
        "n_train": len(train_set),
        "n_valid": len(valid_set),
        "batch_size": tr["batch_size"],
        **timing,
        "compile_s": round(sum(compile_events.values()), 2),
        "final": errors(history[-1]) if history else None,
        "best": errors(best) if best else None,
        "train_wall_s": round(train_wall_s, 2),
        "data_prep_s": round(prep_s, 2),
        "total_wall_s": round(time.perf_counter() - t_start, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "n_params": pot.num_parameters,
        "avg_num_neighbors": proto["avg_num_neighbors"],
        "threads": len(cpus),
        "threads_how": "os.sched_setaffinity (XLA:CPU sizes its pool from the allowed CPUs)",
        "hyper": hp,
        "training": {**tr, "loss": "w_E * MSE(energy per atom) + w_F * MSE(force components)",
                     "ema_decay": tr.get("ema_decay", 0.0), "swa_start": None, "output": str(out)},
        "versions": {"jaxpot": jaxpot.__version__, "jax": jax.__version__, "numpy": np.__version__},
    }


# ---------------------------------------------------------------------------------------
# Driver and table
# ---------------------------------------------------------------------------------------


def drive(args) -> int:
    if "mace-torch" in args.codes and not Path(args.peer_python).is_file():
        sys.exit(f"benchmarks/mace_parity.py: the mace-torch peer needs its interpreter, but {args.peer_python!r} "
                 f"does not exist; build it with ../shared/bench/peers/setup.sh mace, or pass --peer-python "
                 f"(or --codes jaxpot).")
    run_dir = Path(args.workdir or (REPO / "results" / "mace_parity" / time.strftime("%Y%m%d-%H%M%S")))
    run_dir.mkdir(parents=True, exist_ok=True)
    args.workdir = str(run_dir)
    proto_path = run_dir / "protocol.json"
    if args.reuse_protocol:  # another driver made it: the two codes may then run side by side
        if not proto_path.is_file():
            sys.exit(f"benchmarks/mace_parity.py: --reuse-protocol: no {proto_path}")
        proto = json.loads(proto_path.read_text())
        if (proto["training"]["epochs"] != args.epochs or proto["model"]["hidden_irreps"] != args.hidden_irreps
                or proto["training"].get("ema_decay", 0.0) != args.ema_decay):
            sys.exit(f"benchmarks/mace_parity.py: --reuse-protocol: {proto_path} has other epochs, hidden_irreps "
                     f"or ema decay")
    else:
        proto = make_protocol(args, run_dir)
        proto_path.write_text(json.dumps(proto, indent=1))
    e0 = ", ".join(f"Z={z}: {e:.4f}" for z, e in zip(proto["species"], proto["e0_eV"]))
    print(f"# protocol: {proto_path} ({len(proto['train_indices'])} train / {len(proto['valid_indices'])} valid, "
          f"E0 eV {{{e0}}}, scale {proto['scale']:.4f}, avg_num_neighbors {proto['avg_num_neighbors']:.3f}, "
          f"{args.epochs} epochs, hidden_irreps {args.hidden_irreps})", file=sys.stderr, flush=True)
    args.child_args = ["--product-weights", args.product_weights]
    records, failures = run_codes(args.codes, args, run_dir, proto_path, os.path.abspath(__file__), PEER_SCRIPT)
    print_table(records)
    return failures


def _ratio(a, b):
    return a / b if a is not None and b else None


def _label(record: dict) -> str:
    """The table's name of a run: the code, and jaxpot's product weights where they are mace-torch's."""
    if record.get("code") == "jaxpot" and record.get("model_hp", {}).get("product_weights") == "independent":
        return "jaxpot (independent)"
    return record.get("code", "?")


def print_table(records: list[dict]) -> None:
    ok = {_label(r): r for r in records if r.get("final")}
    if ok:
        any_rec = next(iter(ok.values()))
        print(f"\n## acac 300 K MACE ({any_rec['hyper']['hidden_irreps']}), validation errors and time per training "
              "epoch (* = contended: other processes held cores in most epochs)")
        print("| code | epochs | train/valid | s/epoch | first epoch s | E MAE meV | E MAE meV/atom | F MAE meV/Å "
              "| best epoch | E MAE best meV | F MAE best meV/Å |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for code in sorted(ok, key=lambda c: (c == "mace-torch", c)):
            r, fin, best = ok[code], ok[code]["final"], ok[code]["best"]
            t = _f(r.get("time_per_epoch_s"), "{:.2f}") + ("*" if r.get("contended") else "")
            print(f"| {code} | {r['epochs']} | {r['n_train']}/{r['n_valid']} | {t} | {_f(r.get('first_epoch_s'))} | "
                  f"{_f(fin['energy_mae_meV'])} | {_f(fin['energy_per_atom_mae_meV'], '{:.3f}')} | "
                  f"{_f(fin['forces_mae_meV_A'])} | {best['epoch']} | {_f(best['energy_mae_meV'])} | "
                  f"{_f(best['forces_mae_meV_A'])} |")
    jaxpots = [c for c in sorted(ok) if c.startswith("jaxpot")]
    if jaxpots and "mace-torch" in ok:
        print("\n## Ratios (error: jaxpot / mace-torch, target <= 1.05; time: mace-torch / jaxpot, > 1 = jaxpot faster)")
        print("| jaxpot | E MAE final | F MAE final | E MAE best | F MAE best | time/epoch |")
        print("|---|---|---|---|---|---|")
    for label in jaxpots if "mace-torch" in ok else ():
        j, m = ok[label], ok["mace-torch"]
        print(f"| {label} | {_f(_ratio(j['final']['energy_mae_meV'], m['final']['energy_mae_meV']))} | "
              f"{_f(_ratio(j['final']['forces_mae_meV_A'], m['final']['forces_mae_meV_A']))} | "
              f"{_f(_ratio(j['best']['energy_mae_meV'], m['best']['energy_mae_meV']))} | "
              f"{_f(_ratio(j['best']['forces_mae_meV_A'], m['best']['forces_mae_meV_A']))} | "
              f"{_f(_ratio(m.get('time_per_epoch_s'), j.get('time_per_epoch_s')))} |")
        if j["epochs"] != m["epochs"] or j["n_train"] != m["n_train"]:
            print(f"\nNOTE: the runs differ in epochs ({j['epochs']} vs {m['epochs']}) or training frames "
                  f"({j['n_train']} vs {m['n_train']}); the error ratios are not like for like.")
        if m.get("avg_num_neighbors") and abs(m["avg_num_neighbors"] - j["avg_num_neighbors"]) > 1e-3:
            print(f"\nNOTE: avg_num_neighbors differs: jaxpot {j['avg_num_neighbors']:.4f}, "
                  f"mace-torch {m['avg_num_neighbors']:.4f}.")
    for r in records:
        if "error" in r:
            tail = (r.get("stderr_tail") or "").strip().splitlines()
            print(f"- FAILED {r.get('code')}: {r['error']}: {tail[-1] if tail else ''}")


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.startswith("{")] if path.is_file() else []


def compare_histories(run_dir: str) -> int:
    """Validation errors of both codes epoch by epoch, from a run folder's histories, also when a run
    was cut short: jaxpot's trainer writes ``jaxpot_run/metrics.jsonl`` after every epoch and the
    peer appends to ``mace-torch_history.jsonl`` after every epoch."""
    run = Path(run_dir)
    jax_rows = _read_jsonl(run / "jaxpot_history.jsonl") or _read_jsonl(run / "jaxpot_run" / "metrics.jsonl")
    jax_by = {r["epoch"]: r for r in jax_rows if r.get("valid")}
    mace_by = {r["epoch"]: r for r in _read_jsonl(run / "mace-torch_history.jsonl")}
    if not jax_by and not mace_by:
        sys.exit(f"benchmarks/mace_parity.py: --compare-histories: no history in {run_dir!r}")
    print(f"\n## {run_dir}: validation MAEs per epoch (E meV/molecule, E meV/atom, F meV/Å; ratio jaxpot / mace-torch)")
    print("| epoch | jaxpot E | mace-torch E | ratio | jaxpot E/atom | mace-torch E/atom | jaxpot F | mace-torch F "
          "| ratio | jaxpot s | mace-torch s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for epoch in sorted(set(jax_by) | set(mace_by)):
        j, m = jax_by.get(epoch, {}).get("valid"), mace_by.get(epoch, {}).get("valid")
        je = j["energy_mae"] * 1e3 if j else None
        jea = j["energy_per_atom_mae"] * 1e3 if j else None
        jf = j["forces_mae"] * 1e3 if j else None
        me = m["mae_e"] * 1e3 if m else None
        mea = m["mae_e_per_atom"] * 1e3 if m else None
        mf = m["mae_f"] * 1e3 if m else None
        print(f"| {epoch} | {_f(je)} | {_f(me)} | {_f(_ratio(je, me))} | {_f(jea, '{:.3f}')} | {_f(mea, '{:.3f}')} | "
              f"{_f(jf)} | {_f(mf)} | {_f(_ratio(jf, mf))} | {_f(jax_by.get(epoch, {}).get('epoch_time_s'), '{:.1f}')} | "
              f"{_f(mace_by.get(epoch, {}).get('epoch_time_s'), '{:.1f}')} |")
    return 0


def parse_args(argv):
    p = argparse.ArgumentParser(prog="benchmarks/mace_parity.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--codes", type=lambda s: [x.strip() for x in s.split(",") if x.strip()], default=list(CODES),
                   help="comma list, run in this order (default jaxpot,mace-torch)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke check: {QUICK['epochs']} epochs on the first {QUICK['train_subset']} training frames")
    p.add_argument("--epochs", type=int, default=None, help=f"training epochs for both codes (default {DEFAULT_EPOCHS})")
    p.add_argument("--data", default=None, help="extxyz with energy (eV) and forces (eV/A) "
                                                "(default $DATA/acac/train_300K.xyz)")
    p.add_argument("--n-train", type=int, default=450)
    p.add_argument("--n-valid", type=int, default=50)
    p.add_argument("--train-subset", type=int, default=None, help="use only the first K training indices")
    p.add_argument("--seed", type=int, default=0, help="split, shuffle and initialisation seed")
    p.add_argument("--init-seed", type=int, default=None, help="initialisation seed of both codes, if not --seed")
    p.add_argument("--hidden-irreps", default="128x0e+128x1o", help="both codes' hidden_irreps")
    p.add_argument("--r-max", type=float, default=5.0)
    p.add_argument("--num-bessel", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.01, help="AMSGrad learning rate (default 0.01, mace's)")
    p.add_argument("--peer-reduced-cg", action="store_true",
                   help="mace-torch with --use_reduced_cg True. Measured with mace 0.3.16 at 32x0e+32x1o: the same "
                        "parameter count (93,520) and identical validation errors as without it, so it does not touch "
                        "the symmetric contraction's 23 (0e) / 51 (1o) correlation-3 weights per element and channel, "
                        "as jaxpot's default product_weights='paths' (8 / 12 with 'independent')")
    p.add_argument("--product-weights", choices=["independent", "paths"], default="paths",
                   help="jaxpot MACE's symmetric-contraction weights: one per independent coupling, or one per "
                        "coupling path as mace-torch (the same functions, 93,520 parameters at 32 channels)")
    p.add_argument("--ema-decay", type=float, default=0.0,
                   help="exponential moving average of the weights, validated with (both codes; mace's --ema "
                        "--ema_decay, torch_ema's warm-up; 0 = off, the default; 0.99 is mace's usual setting)")
    p.add_argument("--optimizer", choices=["amsgrad", "amsgrad_optax", "adam"], default="amsgrad",
                   help="amsgrad (both codes, PyTorch's variant: mace_run_train cannot switch it off); amsgrad_optax "
                        "or adam (jaxpot only, diagnostics: optax's AMSGrad keeps the maximum of the bias-corrected "
                        "second moment, torch's of the raw one)")
    p.add_argument("--plateau-patience", type=int, default=50, help="epochs before the rate drops by 0.8 (mace's 50)")
    p.add_argument("--energy-weight", type=float, default=1.0, help="w_E on MSE(energy per atom) in eV^2")
    p.add_argument("--forces-weight", type=float, default=100.0, help="w_F on MSE(force components) in (eV/A)^2")
    p.add_argument("--threads", type=int, default=2, help="CPUs per run (default 2)")
    p.add_argument("--peer-python", default=None, help="default $PEERS/torch-venv/bin/python (PEERS=/tmp/peers)")
    p.add_argument("--workdir", default=None, help="run folder (default results/mace_parity/TIMESTAMP)")
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")
    p.add_argument("--timeout", type=float, default=6 * 3600.0, help="seconds allowed per code")
    p.add_argument("--reuse-protocol", action="store_true",
                   help="use the protocol.json already in --workdir (written by another run of this script), e.g. "
                        "to run --codes mace-torch beside a --codes jaxpot run (timings are then contended)")
    p.add_argument("--compare-histories", metavar="RUN", default=None,
                   help="print both codes' validation errors epoch by epoch from the histories in a run folder "
                        "(works on runs cut short)")
    p.add_argument("--table-only", metavar="FILE", default=None, help="print the table from a JSON-lines file")
    p.add_argument("--child", choices=["jaxpot"], default=None, help=argparse.SUPPRESS)
    p.add_argument("--protocol", default=None, help=argparse.SUPPRESS)
    p.add_argument("--history", default=None, help=argparse.SUPPRESS)
    p.add_argument("--jaxpot-model", default="mace", help=argparse.SUPPRESS)
    p.add_argument("--jaxpot-hp", default=None, help=argparse.SUPPRESS)  # JSON: the backbone's hyperparameters
    args = p.parse_args(argv)
    for name, value in (QUICK.items() if args.quick else ()):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.epochs is None:
        args.epochs = DEFAULT_EPOCHS
    if args.epochs < 1:
        p.error("--epochs must be >= 1")
    if args.optimizer != "amsgrad" and "mace-torch" in args.codes:
        p.error(f"--optimizer {args.optimizer} is for --codes jaxpot only: mace_run_train always uses torch's AMSGrad")
    bad = [c for c in args.codes if c not in CODES]
    if bad:
        p.error(f"unknown code(s) {bad}; choose from {', '.join(CODES)}")
    if args.data is None:
        args.data = str(Path(DEFAULT_DATA) / "acac" / "train_300K.xyz")
    if args.peer_python is None:
        args.peer_python = str(Path(PEERS_ENV) / "torch-venv" / "bin" / "python")
    return args


def main(argv=None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.table_only:
        if not Path(args.table_only).is_file():
            sys.exit(f"benchmarks/mace_parity.py: --table-only: no such file {args.table_only!r}")
        print_table([json.loads(ln) for ln in Path(args.table_only).read_text().splitlines() if ln.startswith("{")])
        return 0
    if args.compare_histories:
        return compare_histories(args.compare_histories)
    if args.child == "jaxpot":
        print(json.dumps(run_jaxpot(args)), flush=True)
        return 0
    if not Path(args.data).is_file():
        sys.exit(f"benchmarks/mace_parity.py: no data file {args.data!r} (set --data or JAXPOT_DATA)")
    return 1 if drive(args) else 0


if __name__ == "__main__":
    sys.exit(main())
