#!/usr/bin/env python
"""rMD17-ethanol accuracy and training speed: jaxpot PaiNN and SchNetPack's PaiNN, side by side.

The protocol (rMD17-style, Christensen & von Lilienfeld 2020): 1000 ethanol frames
($DATA/ethanol_botnet/train.xyz, rMD17 configurations, energies in eV and forces in eV/Å),
950 for training and 50 for validation, chosen by ``jaxpot.data.split(1000, [950, 50], seed)``.
The driver (this process) reads the data, makes the split, fits the per-species reference
energies (``jaxpot.data.fit_e0`` on the training frames: least squares, which for a single
molecule puts sum_i E0[Z_i] at the mean training energy) and the energy scale (RMS of the
training force components, as ``jaxpot train`` does), and writes all of it with the
hyperparameters and the training settings to ``protocol.json``. Then, one after the other
(never two at once), in fresh subprocesses:

* jaxpot: ``jaxpot.train.train`` (the trainer behind ``jaxpot train``) on
  ``Potential.create("painn", ..., e0=E0, scale=scale)`` with ``GraphLoader`` batches;
* schnetpack: ``benchmarks/peers/schnetpack_painn_train.py`` with the peer's interpreter
  (schnetpack 2.0.4, torch CPU), reading the same protocol.json.

Both use: PaiNN with 128 features, 3 interactions, 20 radial functions sin(n pi r / rc) / r
(jaxpot's PaiNN; schnetpack's ``BesselRBF``, or ``--peer-rbf gaussian`` for the ``GaussianRBF``
of schnetpack's painn.yaml recipe), cosine cutoff at 5 Å, a 128-64-1 SiLU readout summed over
atoms, times the same energy scale, plus the same E0s; float32; batch size 10; Adam (or
AMSGrad) with the same learning rate set before every step by the same function (cosine decay
to 1 % by default); no weight decay, no gradient clipping (unless ``--clip-norm``), no EMA
(jaxpot's ``ema_decay = 0``: the evaluated parameters are the raw ones) and no SWA/late loss
re-weighting; loss ``w_E * MSE(energy per atom) + w_F * MSE(force components)`` (schnetpack:
``ModelOutput`` MSE on the total energy with weight ``w_E / 9**2``); the same batches in the
same order every epoch (``default_rng((seed, epoch)).permutation``, consecutive chunks); the
same epochs. Validation after every epoch on the 50 held-out frames.

Reported per code (one JSON line each, then a table): validation energy MAE (meV per
molecule) and force MAE (meV/Å) after the last epoch and at the best epoch (lowest validation
loss, the training loss's form), the median wall time per training epoch over epochs >= 1
(validation excluded; over the epochs where other processes held < 0.25 core when at least
half are such, else over all with ``contended``), the first epoch's time, and jaxpot's
compilation time (trace + lowering + XLA compile, from jax.monitoring) separately. Ratios:
schnetpack time / jaxpot time (> 1: jaxpot faster); jaxpot error / schnetpack error
(< 1: jaxpot more accurate).

Threads: ``--threads N`` pins the jaxpot child to its first N allowed CPUs before jax is
imported (XLA:CPU sizes its pool from the affinity; see speed.py); the peer gets
``torch.set_num_threads(N)``.

Examples:
  # the full comparison (default 50 epochs: about 30 min for schnetpack on 2 quiet cores)
  python benchmarks/accuracy.py --out results/accuracy.jsonl
  # smoke check: 2 epochs on 200 training frames
  python benchmarks/accuracy.py --quick
  # reprint the table
  python benchmarks/accuracy.py --table-only results/accuracy.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
DEFAULT_DATA = os.environ.get("JAXPOT_DATA", str(REPO.parent / "shared" / "data"))
PEERS_ENV = os.environ.get("PEERS", "/tmp/peers")
PEER_SCRIPT = HERE / "peers" / "schnetpack_painn_train.py"

# What fits in about 30 minutes for the slower code (schnetpack) on 2 quiet cores, estimated from
# --quick smoke runs on a contended machine (see benchmarks/README.md); override with --epochs.
DEFAULT_EPOCHS = 50
QUICK = {"epochs": 2, "train_subset": 200}

sys.path.insert(0, str(HERE / "peers"))
from epoch_clock import EpochClock, summarize_epochs  # noqa: E402


# ---------------------------------------------------------------------------------------
# The protocol: split, E0, scale, hyperparameters, training settings
# ---------------------------------------------------------------------------------------


def make_protocol(args) -> dict:
    import numpy as np

    from jaxpot.data import fit_e0, force_rms, read, split

    frames = read(args.data)
    i_train, i_valid = split(len(frames), [args.n_train, args.n_valid], seed=args.seed)
    if args.train_subset:
        i_train = i_train[: args.train_subset]
    train = [frames[i] for i in i_train]
    valid = [frames[i] for i in i_valid]
    species = sorted({int(z) for a in frames for z in a.numbers})
    e0 = fit_e0(train, species)
    scale = force_rms(train) if args.scale == "force_rms" else 1.0
    bs = args.batch_size
    return {
        "data": str(Path(args.data).resolve()),
        "n_frames": len(frames),
        "seed": args.seed,
        "init_seed": args.seed if args.init_seed is None else args.init_seed,
        "split": f"jaxpot.data.split({len(frames)}, [{args.n_train}, {args.n_valid}], seed={args.seed})"
                 + (f", training set cut to its first {args.train_subset}" if args.train_subset else ""),
        "train_indices": i_train.tolist(),
        "valid_indices": i_valid.tolist(),
        "species": species,
        "e0_eV": [float(x) for x in e0],
        "e0_how": "jaxpot.data.fit_e0 on the training frames (least squares; one molecule: "
                  "sum_i E0[Z_i] = mean training energy)",
        "scale": float(scale),
        "scale_how": "RMS of the training force components (eV/A), as `jaxpot train`" if args.scale == "force_rms"
                     else "none (1.0)",
        "threads": args.threads,
        "model": {"features": args.features, "num_interactions": args.interactions, "num_rbf": args.rbf,
                  "cutoff": args.cutoff, "peer_radial_basis": args.peer_rbf, "dtype": "float32"},
        "training": {"epochs": args.epochs, "batch_size": bs, "optimizer": args.optimizer,
                     "learning_rate": args.lr, "schedule": args.schedule,
                     "final_lr_fraction": args.final_lr_fraction, "warmup_steps": 0,
                     "weights": {"energy": args.energy_weight, "forces": args.forces_weight},
                     "clip_norm": args.clip_norm, "weight_decay": 0.0,
                     "shuffle": "numpy.random.default_rng((seed, epoch)).permutation(n_train), "
                                "consecutive chunks of batch_size (jaxpot.data.GraphLoader's order)"},
        "peer": {"neighbor_list": args.peer_nl},
        "checks": {
            "train_energy_sum_eV": float(np.sum([a.info["energy"] for a in train])),
            "valid_energy_sum_eV": float(np.sum([a.info["energy"] for a in valid])),
            "epoch0_order_head": np.random.default_rng((args.seed, 0)).permutation(len(train))[:20].tolist(),
        },
    }


# ---------------------------------------------------------------------------------------
# The jaxpot side (a child process)
# ---------------------------------------------------------------------------------------


def pin_threads(n: int) -> list[int]:
    """Restrict this process to its first n allowed CPUs (before jax is imported)."""
    allowed = sorted(os.sched_getaffinity(0))
    if 0 < n < len(allowed):
        os.sched_setaffinity(0, allowed[:n])
    return sorted(os.sched_getaffinity(0))


class ClockedLoader:
    """A GraphLoader whose complete epochs are timed by EpochClock (from the first batch asked
    for to the iterator's end, which the trainer reaches after its last step's loss is on the
    host). Partial iterations (the trainer peeks at one batch for its labels) are not recorded."""

    def __init__(self, loader):
        self.loader = loader
        self.records: list[dict] = []

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def epoch(self, epoch: int, start: int = 0):
        batches = self.loader.epoch(epoch, start=start)
        outer = self

        class Timed:
            def __len__(self):
                return len(batches)

            def __iter__(self):
                clock = EpochClock()
                clock.start()
                yield from batches
                outer.records.append(clock.stop())

        return Timed()


def run_jaxpot(args) -> dict:
    t_start = time.perf_counter()
    cpus = pin_threads(args.threads)
    proto = json.loads(Path(args.protocol).read_text())
    hp, tr = proto["model"], proto["training"]
    devices = args.jaxpot_devices
    if devices > 1:  # before jax starts its CPU backend
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
    per_device = tr["batch_size"] // devices

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

    frames = read(proto["data"])
    train_set = [frames[i] for i in proto["train_indices"]]
    valid_set = [frames[i] for i in proto["valid_indices"]]
    for name, fr in (("train", train_set), ("valid", valid_set)):
        got = float(np.sum([a.info["energy"] for a in fr]))
        if abs(got - proto["checks"][f"{name}_energy_sum_eV"]) > 1e-6 * max(1.0, abs(got)):
            raise SystemExit(f"{name} energies differ from the protocol's")
    species = proto["species"]
    pot = jaxpot.Potential.create(
        "painn", species, hp["cutoff"], seed=proto.get("init_seed", proto["seed"]), e0=proto["e0_eV"], scale=proto["scale"],
        dtype=hp["dtype"], features=hp["features"], num_interactions=hp["num_interactions"], num_rbf=hp["num_rbf"],
    )
    t0 = time.perf_counter()
    # D devices: batches of batch_size / D, taken D consecutive ones per step (the trainer's groups),
    # so a step sees the same structures as one batch of batch_size.
    train_loader = ClockedLoader(GraphLoader(train_set, hp["cutoff"], species, per_device, seed=proto["seed"]))
    valid_loader = GraphLoader(valid_set, hp["cutoff"], species, tr["batch_size"], shuffle=False)
    prep_s = time.perf_counter() - t0
    order = train_loader.order(0)[:20].tolist()
    if order != proto["checks"]["epoch0_order_head"]:
        raise SystemExit("GraphLoader's epoch-0 order differs from the protocol's")
    sizes = {len(b) for b in train_loader.batch_indices(0)}
    if sizes - {per_device, len(train_set) % per_device}:
        raise SystemExit(f"GraphLoader packed batches of sizes {sorted(sizes)}, not consecutive chunks")

    options = TrainingOptions(
        epochs=tr["epochs"], learning_rate=tr["learning_rate"], optimizer=tr["optimizer"], schedule=tr["schedule"],
        warmup_steps=0, final_lr_fraction=tr["final_lr_fraction"], clip_norm=tr["clip_norm"], weight_decay=0.0,
        ema_decay=0.0, weights=dict(tr["weights"]), swa_start=None, eval_every=1, checkpoint_every=10**9,
        keep_checkpoints=1, progress=False, devices=devices,
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
        history.append({"epoch": rec["epoch"], "step": rec["step"], "lr": rec["lr"], "train_loss": rec["train_loss"],
                        "epoch_time_s": clock["wall_s"], "trainer_epoch_time_s": rec["epoch_time_s"],
                        "other_busy_cores": clock["other_busy_cores"],
                        "valid": {**v, "valid_loss": w_e * v["energy_per_atom_rmse"] ** 2
                                  + w_f * v["forces_rmse"] ** 2}})
    if args.history:
        Path(args.history).write_text("".join(json.dumps(h) + "\n" for h in history))

    def errors(rec):
        v = rec["valid"]
        return {"epoch": rec["epoch"], "energy_mae_meV": v["energy_mae"] * 1e3, "forces_mae_meV_A": v["forces_mae"] * 1e3,
                "energy_rmse_meV": v["energy_rmse"] * 1e3, "forces_rmse_meV_A": v["forces_rmse"] * 1e3,
                "energy_per_atom_mae_meV": v["energy_per_atom_mae"] * 1e3, "valid_loss": v["valid_loss"]}

    best = min(history, key=lambda r: r["valid"]["valid_loss"]) if history else None
    clocks = train_loader.records[: len(history)]
    timing = summarize_epochs(clocks)
    compile_s = sum(compile_events.values())
    n_edges = int(np.sum(train_loader.num_edges))
    return {
        "code": "jaxpot",
        "model": "painn",
        "stopped": result.stopped,
        "epochs": len(history),
        "epochs_asked": tr["epochs"],
        "n_train": len(train_set),
        "n_valid": len(valid_set),
        "batch_size": tr["batch_size"],
        "steps_per_epoch": math.ceil(train_loader.num_batches(0) / devices),
        "devices": devices,
        "batch_per_device": per_device,
        **timing,
        "compile_s": round(compile_s, 2),
        "compile_events_s": {k.rsplit("/", 1)[-1]: round(v, 2) for k, v in compile_events.items()},
        "first_epoch_minus_median_s": (round(timing["first_epoch_s"] - timing["time_per_epoch_s"], 2)
                                       if timing.get("time_per_epoch_s") else None),
        "final": errors(history[-1]) if history else None,
        "best": errors(best) if best else None,
        "train_wall_s": round(train_wall_s, 2),
        "data_prep_s": round(prep_s, 2),
        "total_wall_s": round(time.perf_counter() - t_start, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "n_params": pot.num_parameters,
        "n_edges_train": n_edges,
        "batch_budget": list(train_loader.budget),
        "threads": len(cpus),
        "threads_how": "os.sched_setaffinity (XLA:CPU sizes its pool from the allowed CPUs)",
        "cpus_allowed": cpus,
        "hyper": {"features": hp["features"], "num_interactions": hp["num_interactions"], "num_rbf": hp["num_rbf"],
                  "cutoff": hp["cutoff"], "radial_basis": "sin(n pi r/rc)/r (jaxpot.nn.bessel_basis * sqrt(rc/2))",
                  "cutoff_fn": "cosine", "readout": dict(pot.readout), "energy_scale": proto["scale"],
                  "init": "backbone: Xavier uniform kernels, zero bias, embedding N(0, 1) (as schnetpack); readout: flax defaults (LeCun normal)"},
        "training": {**tr, "loss": "w_E * MSE(energy per atom) + w_F * MSE(force components)",
                     "ema_decay": 0.0, "swa_start": None, "output": str(out)},
        "versions": {"jaxpot": jaxpot.__version__, "jax": jax.__version__, "numpy": np.__version__},
        "machine": {"jax_backend": jax.default_backend(), "jax_devices": [str(d) for d in jax.devices()]},
    }


# ---------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------


def machine_info() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "n_cpu_visible": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)}


def run_child(cmd: list[str], label: dict, timeout_s: float) -> dict:
    print(f"# running {label['code']}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout_s)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        rc, err_tail = proc.returncode, proc.stderr[-3000:]
    except subprocess.TimeoutExpired:
        lines, rc, err_tail = [], -9, f"timeout after {timeout_s}s"
    if not lines:
        return {**label, "error": f"rc={rc}", "stderr_tail": err_tail}
    rec = json.loads(lines[-1])
    if rc != 0:
        rec["error"] = f"rc={rc}"
        rec["stderr_tail"] = err_tail
    rec["child_wall_s"] = round(time.perf_counter() - t0, 1)
    rec["machine"] = {**rec.get("machine", {}), **machine_info(), "loadavg_1m_before": round(load0, 2)}
    return rec


def drive(args) -> int:
    codes = args.codes
    if "schnetpack" in codes and not Path(args.peer_python).is_file():
        sys.exit(f"benchmarks/accuracy.py: the schnetpack peer needs its interpreter, but {args.peer_python!r} "
                 f"does not exist; build it with ../shared/bench/peers/setup.sh painn, or pass --peer-python "
                 f"(or --codes jaxpot).")
    run_dir = Path(args.workdir or (REPO / "results" / "accuracy" / time.strftime("%Y%m%d-%H%M%S")))
    run_dir.mkdir(parents=True, exist_ok=True)
    args.workdir = str(run_dir)
    proto = make_protocol(args)
    proto_path = run_dir / "protocol.json"
    proto_path.write_text(json.dumps(proto, indent=1))
    e0 = ", ".join(f"Z={z}: {e:.4f}" for z, e in zip(proto["species"], proto["e0_eV"]))
    print(f"# protocol: {proto_path} ({len(proto['train_indices'])} train / {len(proto['valid_indices'])} valid, "
          f"E0 eV {{{e0}}}, scale {proto['scale']:.4f}, {args.epochs} epochs)", file=sys.stderr, flush=True)
    records, failures = run_codes(codes, args, run_dir, proto_path, os.path.abspath(__file__), PEER_SCRIPT)
    print_table(records)
    return failures


def emit(rec: dict, sink) -> None:
    """Print one result as a JSON line, and append it to the open ``sink`` file if any."""
    line = json.dumps(rec)
    print(line, flush=True)
    if sink:
        sink.write(line + "\n")
        sink.flush()


def run_codes(codes, args, run_dir: Path, proto_path: Path, driver: str, peer_script) -> tuple[list[dict], int]:
    """Train with each code in its own child process (jaxpot: ``driver --child jaxpot``; a peer:
    ``args.peer_python peer_script``), one after the other, each writing its per-epoch history;
    prints and appends (``args.out``) one JSON line per code. Returns (records, failures)."""
    sink = open(args.out, "a") if args.out else None
    records, failures = [], 0
    try:
        for code in codes:
            history = str(run_dir / f"{code}_history.jsonl")
            if code == "jaxpot":
                cmd = [sys.executable, driver, "--child", "jaxpot", "--protocol", str(proto_path),
                       "--threads", str(args.threads), "--workdir", str(run_dir), "--history", history,
                       "--jaxpot-devices", str(getattr(args, "jaxpot_devices", 1)), *getattr(args, "child_args", ())]
            else:
                cmd = [args.peer_python, str(peer_script), "--protocol", str(proto_path), "--threads",
                       str(args.threads), "--history", history]
            rec = run_child(cmd, {"code": code}, args.timeout)
            rec["protocol"] = str(proto_path)
            rec["history"] = history
            failures += "error" in rec
            records.append(rec)
            emit(rec, sink)
    finally:
        if sink:
            sink.close()
    return records, failures


# ---------------------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------------------


def _f(x, fmt="{:.2f}"):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def print_table(records: list[dict]) -> None:
    ok = {}
    for r in records:
        if "final" in r and r.get("final"):
            ok[r["code"]] = r
    errors = [r for r in records if "error" in r]
    if ok:
        print("\n## rMD17 ethanol, validation errors and time per training epoch "
              "(* = contended: other processes held cores in most epochs)")
        print("| code | epochs | train/valid | s/epoch | CPU s/epoch | first epoch s | compile s | E MAE meV "
              "| F MAE meV/Å | best epoch | E MAE best | F MAE best |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for code in sorted(ok, key=lambda c: c != "jaxpot"):
            r = ok[code]
            t = _f(r.get("time_per_epoch_s"), "{:.3f}") + ("*" if r.get("contended") else "")
            print(f"| {code} | {r['epochs']} | {r['n_train']}/{r['n_valid']} | {t} | {_f(r.get('cpu_per_epoch_s'))} | "
                  f"{_f(r.get('first_epoch_s'))} | "
                  f"{_f(r.get('compile_s'))} | {_f(r['final']['energy_mae_meV'])} | {_f(r['final']['forces_mae_meV_A'])} | "
                  f"{r['best']['epoch']} | {_f(r['best']['energy_mae_meV'])} | {_f(r['best']['forces_mae_meV_A'])} |")
    if "jaxpot" in ok and "schnetpack" in ok:
        j, s = ok["jaxpot"], ok["schnetpack"]

        def ratio(a, b):
            return a / b if a is not None and b else None

        print("\n## Ratios (time: schnetpack / jaxpot, > 1 = jaxpot faster; error: jaxpot / schnetpack, "
              "< 1 = jaxpot more accurate)")
        print("| time/epoch | E MAE final | F MAE final | E MAE best | F MAE best |")
        print("|---|---|---|---|---|")
        print(f"| {_f(ratio(s.get('time_per_epoch_s'), j.get('time_per_epoch_s')))} | "
              f"{_f(ratio(j['final']['energy_mae_meV'], s['final']['energy_mae_meV']))} | "
              f"{_f(ratio(j['final']['forces_mae_meV_A'], s['final']['forces_mae_meV_A']))} | "
              f"{_f(ratio(j['best']['energy_mae_meV'], s['best']['energy_mae_meV']))} | "
              f"{_f(ratio(j['best']['forces_mae_meV_A'], s['best']['forces_mae_meV_A']))} |")
        if j["epochs"] != s["epochs"] or j["n_train"] != s["n_train"]:
            print(f"\nNOTE: the runs differ in epochs ({j['epochs']} vs {s['epochs']}) or training frames "
                  f"({j['n_train']} vs {s['n_train']}); the error ratios are not like for like.")
    if errors:
        print("\n## Failed runs")
        for r in errors:
            tail = (r.get("stderr_tail") or "").strip().splitlines()
            print(f"- {r.get('code')}: {r['error']}: {tail[-1] if tail else ''}")


def table_only(path: str) -> int:
    if not Path(path).is_file():
        sys.exit(f"benchmarks/accuracy.py: --table-only: no such file {path!r}")
    records = [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip().startswith("{")]
    print_table(records)
    return 0


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------


def _csv(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def _opt_float(s: str):
    return None if s.lower() in ("none", "0", "") else float(s)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="benchmarks/accuracy.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--codes", type=_csv, default=["jaxpot", "schnetpack"],
                   help="comma list, run in this order: jaxpot,schnetpack (default both)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke check: {QUICK['epochs']} epochs on the first {QUICK['train_subset']} training frames "
                        "(explicit --epochs/--train-subset still win)")
    p.add_argument("--epochs", type=int, default=None, help=f"training epochs for both codes (default {DEFAULT_EPOCHS})")
    p.add_argument("--data", default=None,
                   help="extxyz with energy (eV) and forces (eV/A) (default $DATA/ethanol_botnet/train.xyz)")
    p.add_argument("--n-train", type=int, default=950)
    p.add_argument("--n-valid", type=int, default=50)
    p.add_argument("--train-subset", type=int, default=None, help="use only the first K training indices")
    p.add_argument("--seed", type=int, default=0, help="split, shuffle and initialisation seed")
    p.add_argument("--init-seed", type=int, default=None,
                   help="parameter initialisation seed of both codes, if not --seed (to measure seed spread)")
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--optimizer", choices=["adam", "amsgrad"], default="adam")
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (default 5e-4, PaiNN's MD17 value)")
    p.add_argument("--schedule", choices=["cosine", "constant"], default="cosine")
    p.add_argument("--final-lr-fraction", type=float, default=0.01, help="cosine: final rate / peak rate")
    p.add_argument("--energy-weight", type=float, default=1.0, help="w_E on MSE(energy per atom) in eV^2")
    p.add_argument("--forces-weight", type=float, default=100.0, help="w_F on MSE(force components) in (eV/A)^2")
    p.add_argument("--clip-norm", type=_opt_float, default=None, help="global gradient-norm clip, both codes (default none)")
    p.add_argument("--scale", choices=["force_rms", "none"], default="force_rms",
                   help="energy scale of the atomic outputs (default: training force RMS, as `jaxpot train`)")
    p.add_argument("--features", type=int, default=128)
    p.add_argument("--interactions", type=int, default=3)
    p.add_argument("--rbf", type=int, default=20)
    p.add_argument("--cutoff", type=float, default=5.0)
    p.add_argument("--peer-rbf", choices=["bessel", "gaussian"], default="bessel",
                   help="schnetpack's radial basis: BesselRBF (= jaxpot's, the paper's) or GaussianRBF (its painn.yaml)")
    p.add_argument("--peer-nl", choices=["matscipy", "ase"], default="matscipy",
                   help="schnetpack's neighbour-list transform (computed once, before training)")
    p.add_argument("--threads", type=int, default=2,
                   help="CPUs per run (jaxpot: CPU affinity; schnetpack: torch.set_num_threads); default 2")
    p.add_argument("--jaxpot-devices", type=int, default=1,
                   help="jaxpot trains data-parallel over this many XLA:CPU host devices "
                        "(--xla_force_host_platform_device_count), batch_size / D structures each, so every step "
                        "still sees the same batch_size structures and the same loss (default 1)")
    p.add_argument("--peer-python", default=None,
                   help="the peer's interpreter (default $PEERS/spk-venv/bin/python, PEERS=/tmp/peers)")
    p.add_argument("--workdir", default=None,
                   help="folder for protocol.json, histories and jaxpot's run (default results/accuracy/TIMESTAMP)")
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")
    p.add_argument("--timeout", type=float, default=6 * 3600.0, help="seconds allowed per code")
    p.add_argument("--table-only", metavar="FILE", default=None, help="print the table from a JSON-lines file")
    p.add_argument("--child", choices=["jaxpot"], default=None, help=argparse.SUPPRESS)
    p.add_argument("--protocol", default=None, help=argparse.SUPPRESS)
    p.add_argument("--history", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name, value in (QUICK.items() if args.quick else ()):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.epochs is None:
        args.epochs = DEFAULT_EPOCHS
    if args.epochs < 1:
        p.error("--epochs must be >= 1")
    if not args.child and (args.jaxpot_devices < 1 or args.batch_size % args.jaxpot_devices):
        p.error(f"--jaxpot-devices must divide --batch-size ({args.batch_size}), got {args.jaxpot_devices}")
    bad = [c for c in args.codes if c not in ("jaxpot", "schnetpack")]
    if bad:
        p.error(f"unknown code(s) {bad}; choose from jaxpot, schnetpack")
    if args.data is None:
        args.data = str(Path(DEFAULT_DATA) / "ethanol_botnet" / "train.xyz")
    if args.peer_python is None:
        args.peer_python = str(Path(PEERS_ENV) / "spk-venv" / "bin" / "python")
    return args


def main(argv=None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.table_only:
        return table_only(args.table_only)
    if args.child == "jaxpot":
        print(json.dumps(run_jaxpot(args)), flush=True)
        return 0
    if not Path(args.data).is_file():
        sys.exit(f"benchmarks/accuracy.py: no data file {args.data!r} (set --data or JAXPOT_DATA)")
    return 1 if drive(args) else 0


if __name__ == "__main__":
    sys.exit(main())
