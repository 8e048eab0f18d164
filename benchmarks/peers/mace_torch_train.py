#!/usr/bin/env python
"""mace-torch's side of benchmarks/mace_parity.py: ``mace_run_train`` on the protocol's split.

Run with the peer's interpreter (/tmp/peers/torch-venv, mace-torch 0.3.16, torch CPU):

  python benchmarks/peers/mace_torch_train.py --protocol RUN/protocol.json --threads 2 --history H.jsonl

It reads ``protocol.json`` (written by benchmarks/mace_parity.py: the training and validation
frames as extxyz files with ``REF_energy`` / ``REF_forces``, E0s, hyperparameters, training
settings) and calls mace's own training entry point, ``mace.cli.run_train.run``, with the
arguments ``mace_run_train`` would parse from the command line printed on stderr. Nothing of
mace's model or loop is replaced; two of its functions are wrapped to observe it:

* ``mace.tools.train.train_one_epoch``: an ``EpochClock`` (benchmarks/peers/epoch_clock.py,
  the same clock as jaxpot's side) brackets every training epoch (validation excluded);
* ``mace.tools.train.valid_err_log``: records the validation metrics mace computes after every
  epoch (``mae_e``, ``mae_e_per_atom``, ``mae_f``, ... in eV and eV/Å).

and the final error table over the training and validation sets (``create_error_table``) is
skipped, as are the plots (``--plot False``): they only re-evaluate.

Prints one JSON line (the result) on stdout; mace's own log goes to stderr and RUN/mace/.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from epoch_clock import EpochClock, summarize_epochs  # noqa: E402


def mace_argv(proto: dict, work_dir: Path) -> list[str]:
    """The ``mace_run_train`` arguments that realise the protocol."""
    hp, tr = proto["model"], proto["training"]
    e0s = "{" + ", ".join(f"{z}: {e!r}" for z, e in zip(proto["species"], proto["e0_eV"])) + "}"
    argv = [
        "--name", "mace_parity",
        "--work_dir", str(work_dir),
        "--train_file", proto["train_xyz"],
        "--valid_file", proto["valid_xyz"],
        "--energy_key", "REF_energy",
        "--forces_key", "REF_forces",
        "--E0s", e0s,
        "--model", "MACE",
        "--r_max", str(hp["r_max"]),
        "--num_radial_basis", str(hp["num_bessel"]),
        "--num_cutoff_basis", str(hp["num_polynomial_cutoff"]),
        "--max_ell", str(hp["max_ell"]),
        "--num_interactions", str(hp["num_interactions"]),
        "--hidden_irreps", hp["hidden_irreps"],
        "--correlation", str(hp["correlation"]),
        "--use_reduced_cg", str(bool(hp.get("peer_use_reduced_cg", False))),
        "--MLP_irreps", hp["MLP_irreps"],
        "--radial_MLP", "[" + ", ".join(str(w) for w in hp["radial_MLP"]) + "]",
        "--scaling", "rms_forces_scaling",
        "--default_dtype", hp["dtype"],
        "--device", "cpu",
        "--loss", "weighted",
        "--energy_weight", str(tr["weights"]["energy"]),
        "--forces_weight", str(tr["weights"]["forces"]),
        "--batch_size", str(tr["batch_size"]),
        "--valid_batch_size", str(tr["batch_size"]),
        "--max_num_epochs", str(tr["epochs"]),
        "--lr", str(tr["learning_rate"]),
        "--weight_decay", "0.0",
        "--scheduler", "ReduceLROnPlateau",
        "--lr_factor", str(tr["plateau_factor"]),
        "--scheduler_patience", str(tr["plateau_patience"]),
        "--clip_grad", str(tr["clip_norm"]) if tr["clip_norm"] else "None",
        "--eval_interval", "1",
        "--patience", str(10**6),
        "--seed", str(proto["init_seed"]),
        "--num_workers", "0",
        "--error_table", "PerAtomMAE",
        "--save_cpu",
        "--plot", "False",
    ]
    if tr["optimizer"] != "amsgrad":  # mace_run_train's --amsgrad is store_true with default True
        raise SystemExit("mace_run_train always uses AMSGrad; the protocol must say optimizer 'amsgrad'")
    ema = float(tr.get("ema_decay", 0.0))  # validation then uses the averaged weights, as jaxpot's trainer
    return argv + ["--amsgrad"] + (["--ema", "--ema_decay", str(ema)] if ema > 0 else [])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocol", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--history", default=None)
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    proto = json.loads(Path(args.protocol).read_text())
    tr = proto["training"]

    import resource

    import mace
    import mace.tools.train  # noqa: F401  (the module; mace.tools re-exports its function ``train`` under that name)
    import torch
    from mace import tools
    from mace.cli.run_train import run

    mace_train = sys.modules["mace.tools.train"]
    torch.set_num_threads(args.threads)
    clocks: list[dict] = []
    evals: list[dict] = []
    train_one_epoch, valid_err_log = mace_train.train_one_epoch, mace_train.valid_err_log

    def timed_epoch(*a, **kw):
        clock = EpochClock()
        clock.start()
        out = train_one_epoch(*a, **kw)
        clocks.append({**clock.stop(), "epoch": kw.get("epoch")})
        return out

    def logged_eval(valid_loss, eval_metrics, *a, **kw):
        epoch = kw.get("epoch", a[2] if len(a) > 2 else None)
        if epoch is not None:
            evals.append({"epoch": int(epoch), "valid_loss": float(valid_loss),
                          **{k: float(v) for k, v in eval_metrics.items() if isinstance(v, (int, float))
                             or (hasattr(v, "item") and getattr(v, "ndim", 1) == 0)}})
            if args.history and clocks:  # as it comes, so that a run cut short leaves its epochs
                with open(args.history, "a") as fh:
                    fh.write(json.dumps({"epoch": int(epoch), "epoch_time_s": clocks[-1]["wall_s"],
                                         "other_busy_cores": clocks[-1]["other_busy_cores"], "valid": evals[-1]}) + "\n")
        return valid_err_log(valid_loss, eval_metrics, *a, **kw)

    mace_train.train_one_epoch = timed_epoch
    mace_train.valid_err_log = logged_eval
    # After training, run() re-evaluates the whole training and validation sets for its error table
    # (minutes of CPU here, and the per-epoch validation metrics above are already what we report).
    sys.modules["mace.cli.run_train"].create_error_table = lambda **kw: "(skipped by benchmarks/peers/mace_torch_train.py)"

    work_dir = Path(args.protocol).parent / "mace"
    margv = mace_argv(proto, work_dir)
    print("# mace_run_train " + " ".join(f"'{x}'" if any(c in x for c in " {}[]") else x for x in margv),
          file=sys.stderr, flush=True)
    mace_args = tools.build_default_arg_parser().parse_args(margv)
    t_train = time.perf_counter()
    run(mace_args)
    train_wall_s = time.perf_counter() - t_train

    model = torch.load(work_dir / "mace_parity.model", map_location="cpu", weights_only=False)
    avg_nn = float(model.interactions[0].avg_num_neighbors)
    n_params = int(sum(q.numel() for q in model.parameters()))

    history = []
    for ev, clock in zip(evals, clocks):
        history.append({"epoch": ev["epoch"], "epoch_time_s": clock["wall_s"], "other_busy_cores": clock["other_busy_cores"],
                        "valid": ev})
    if args.history:  # the complete history replaces the one written epoch by epoch
        Path(args.history).write_text("".join(json.dumps(h) + "\n" for h in history))

    def errors(rec):
        v = rec["valid"]
        return {"epoch": rec["epoch"], "energy_mae_meV": v["mae_e"] * 1e3, "forces_mae_meV_A": v["mae_f"] * 1e3,
                "energy_rmse_meV": v["rmse_e"] * 1e3, "forces_rmse_meV_A": v["rmse_f"] * 1e3,
                "energy_per_atom_mae_meV": v["mae_e_per_atom"] * 1e3, "valid_loss": v["valid_loss"]}

    best = min(history, key=lambda r: r["valid"]["valid_loss"]) if history else None
    timing = summarize_epochs(clocks[: len(history)])
    hp = proto["model"]
    print(json.dumps({
        "code": "mace-torch",
        "model": "mace",
        "epochs": len(history),
        "epochs_asked": tr["epochs"],
        "n_train": len(proto["train_indices"]),
        "n_valid": len(proto["valid_indices"]),
        "batch_size": tr["batch_size"],
        **timing,
        "final": errors(history[-1]) if history else None,
        "best": errors(best) if best else None,
        "train_wall_s": round(train_wall_s, 2),
        "total_wall_s": round(time.perf_counter() - t_start, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "n_params": n_params,
        "avg_num_neighbors": avg_nn,
        "threads": args.threads,
        "threads_how": "torch.set_num_threads",
        "hyper": hp,
        "training": {**tr, "loss": "mace 'weighted': w_E * MSE(energy per atom) + w_F * MSE(force components)",
                     "ema": float(tr.get("ema_decay", 0.0)) > 0, "swa": False, "work_dir": str(work_dir)},
        "mace_run_train_argv": margv,
        "versions": {"mace-torch": mace.__version__, "torch": torch.__version__},
    }), flush=True)
    return 0 if history and all(math.isfinite(h["valid"]["valid_loss"]) for h in history) else 1


if __name__ == "__main__":
    sys.exit(main())
