#!/usr/bin/env python
"""Accuracy of the spherical-channel and attention models against MACE on acetylacetone (issue 7).

The protocol is benchmarks/mace_parity.py's, unchanged: acetylacetone at 300 K
($DATA/acac/train_300K.xyz, 500 frames of 15 atoms, eV and eV/Å), split 450 / 50 by
``jaxpot.data.split(500, [450, 50], seed)``, per-species reference energies by least squares on
the training frames, energy scale = RMS of the training force components, float32, batch size 5,
AMSGrad at lr 0.01 with reduce-on-plateau (0.8 after 50 epochs), gradient-norm clip 10, no EMA,
loss ``1 * MSE(energy per atom) + 100 * MSE(force components)``, validation after every epoch.
Every model gets the same epoch budget and the same cutoff (``--r-max``, 5 Å).

Each model trains in its own child process (``mace_parity.py --child jaxpot --jaxpot-model M``),
one after the other. The sizes (``BENCH_SIZES``) are CPU-sized and comparable in parameters
(about 0.1-0.3 M), not the papers' (SCN's 16 layers of 128 channels at lmax 6 are for OC20 on
GPUs): two layers each, and features up to l = 2 (SCN, eSCN, EquiformerV2 at lmax 2; Equiformer's
``32x0e+16x1o+8x2e``), where MACE carries ``32x0e+32x1o`` with spherical harmonics to
max_ell 3. ``--hp MODEL=JSON`` overrides them.

Reported: one JSON line per model (mace_parity's record: validation MAEs after the last epoch and
at the best one, time per epoch, parameters), then a table with each model's error relative to
MACE's.

Examples:
  python benchmarks/zoo_accuracy.py --epochs 20 --out results/zoo_accuracy.jsonl
  python benchmarks/zoo_accuracy.py --quick                      # 2 epochs, 100 frames
  python benchmarks/zoo_accuracy.py --table-only results/zoo_accuracy.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import mace_parity  # noqa: E402
from accuracy import REPO, _f, emit, run_child  # noqa: E402

MODELS = ("mace", "scn", "escn", "equiformer", "equiformer_v2")
BENCH_SIZES = {
    # mace: mace_parity's protocol at --hidden-irreps (default here 32x0e+32x1o), max_ell 3, correlation 3
    "mace": {},
    "scn": {"num_interactions": 2, "lmax": 2, "mmax": 1, "sphere_channels": 32, "hidden_channels": 64,
            "num_basis_functions": 32},
    "escn": {"num_layers": 2, "lmax": 2, "mmax": 2, "sphere_channels": 32, "hidden_channels": 32,
             "edge_channels": 32},
    "equiformer": {"irreps_node": "32x0e+16x1o+8x2e", "num_blocks": 2, "irreps_head": "16x0e+8x1o+4x2e",
                   "num_heads": 2, "irreps_mlp_mid": "64x0e+32x1o+16x2e", "irreps_feature": "64x0e",
                   "num_basis": 16, "radial_mlp_width": 32},
    "equiformer_v2": {"num_layers": 2, "lmax": 2, "mmax": 2, "sphere_channels": 32, "attn_hidden_channels": 32,
                      "num_heads": 2, "attn_alpha_channels": 16, "attn_value_channels": 8,
                      "ffn_hidden_channels": 32, "edge_channels": 32, "num_distance_basis": 64},
}
# models whose hyperparameters take the neighbour statistic of the training set
TAKES_AVG_NEIGHBORS = {"equiformer", "equiformer_v2"}


def drive(args) -> int:
    run_dir = Path(args.workdir or (REPO / "results" / "zoo_accuracy" / time.strftime("%Y%m%d-%H%M%S")))
    run_dir.mkdir(parents=True, exist_ok=True)
    args.workdir = str(run_dir)
    proto_path = run_dir / "protocol.json"
    proto = mace_parity.make_protocol(args, run_dir)
    proto_path.write_text(json.dumps(proto, indent=1))
    print(f"# protocol: {proto_path} ({len(proto['train_indices'])} train / {len(proto['valid_indices'])} valid, "
          f"{args.epochs} epochs, r_max {args.r_max})", file=sys.stderr, flush=True)
    sink = open(args.out, "a") if args.out else None
    records, failures = [], 0
    for model in args.models:
        hp = dict(BENCH_SIZES[model]) | args.hp.get(model, {})
        if model in TAKES_AVG_NEIGHBORS:
            hp.setdefault("avg_num_neighbors", proto["avg_num_neighbors"])
        work = run_dir / model
        work.mkdir(exist_ok=True)
        cmd = [sys.executable, str(HERE / "mace_parity.py"), "--child", "jaxpot", "--protocol", str(proto_path),
               "--threads", str(args.threads), "--workdir", str(work), "--history", str(work / "history.jsonl"),
               "--jaxpot-model", model, "--jaxpot-hp", json.dumps(hp)]
        rec = run_child(cmd, {"code": "jaxpot", "model": model}, args.timeout)
        failures += "error" in rec
        records.append(rec)
        emit(rec, sink)
    if sink:
        sink.close()
    print_table(records)
    return failures


def print_table(records: list[dict]) -> None:
    ok = [r for r in records if r.get("final")]
    ref = next((r for r in ok if r["model"] == "mace"), None)
    if ok:
        print(f"\n## acac 300 K, {ok[0]['n_train']}/{ok[0]['n_valid']} frames, {ok[0]['epochs']} epochs, validation "
              "errors after the last epoch and at the best (ratio = model / MACE; * = contended epochs)")
        print("| model | params | s/epoch | E MAE meV | F MAE meV/Å | best epoch | E MAE best | F MAE best "
              "| E ratio | F ratio |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in ok:
            fin, best = r["final"], r["best"]
            t = _f(r.get("time_per_epoch_s"), "{:.1f}") + ("*" if r.get("contended") else "")
            e_ratio = best["energy_mae_meV"] / ref["best"]["energy_mae_meV"] if ref else None
            f_ratio = best["forces_mae_meV_A"] / ref["best"]["forces_mae_meV_A"] if ref else None
            print(f"| {r['model']} | {r['n_params']:,} | {t} | {_f(fin['energy_mae_meV'])} | "
                  f"{_f(fin['forces_mae_meV_A'])} | {best['epoch']} | {_f(best['energy_mae_meV'])} | "
                  f"{_f(best['forces_mae_meV_A'])} | {_f(e_ratio)} | {_f(f_ratio)} |")
    for r in records:
        if "error" in r:
            tail = (r.get("stderr_tail") or "").strip().splitlines()
            print(f"- FAILED {r.get('model')}: {r['error']}: {tail[-1] if tail else ''}")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="benchmarks/zoo_accuracy.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=lambda s: [x.strip() for x in s.split(",") if x.strip()], default=list(MODELS))
    p.add_argument("--hp", action="append", default=[], metavar="MODEL=JSON",
                   help="override a model's hyperparameters, e.g. --hp 'scn={\"lmax\": 4}'")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="2 epochs on the first 100 training frames")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workdir", default=None)
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")
    p.add_argument("--timeout", type=float, default=6 * 3600.0, help="seconds allowed per model")
    p.add_argument("--table-only", metavar="FILE", default=None)
    # the protocol's settings, mace_parity's names and defaults (the MACE side at 32 channels)
    base = mace_parity.parse_args(["--codes", "jaxpot", "--hidden-irreps", "32x0e+32x1o"])
    ours, rest = p.parse_known_args(argv)
    if rest:
        p.error(f"unknown arguments {rest}")
    for k, v in vars(base).items():
        if not hasattr(ours, k):
            setattr(ours, k, v)
    if ours.quick:
        ours.epochs, ours.train_subset = 2, 100
    bad = [m for m in ours.models if m not in BENCH_SIZES]
    if bad:
        p.error(f"unknown model(s) {bad}; choose from {', '.join(MODELS)}")
    hp = {}
    for item in ours.hp:
        name, _, text = item.partition("=")
        if name not in BENCH_SIZES:
            p.error(f"--hp {item!r}: unknown model {name!r}")
        try:
            hp[name] = json.loads(text)
        except json.JSONDecodeError as e:
            p.error(f"--hp {item!r}: not JSON ({e})")
    ours.hp = hp
    return ours


def main(argv=None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.table_only:
        print_table([json.loads(ln) for ln in Path(args.table_only).read_text().splitlines() if ln.startswith("{")])
        return 0
    return 1 if drive(args) else 0


if __name__ == "__main__":
    sys.exit(main())
