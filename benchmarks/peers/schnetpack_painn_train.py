#!/usr/bin/env python
"""Train SchNetPack 2's PaiNN on the protocol written by benchmarks/accuracy.py (the peer side).

Run with the peer's own interpreter (schnetpack 2.0.4, torch 2.13.0 CPU), never jaxpot's:

    $PEERS/spk-venv/bin/python benchmarks/peers/schnetpack_painn_train.py --protocol RUN/protocol.json

The protocol JSON fixes everything both codes share: the data file, the train/validation
indices (made with jaxpot.data.split), the per-species reference energies E0 and the energy
scale (fitted by jaxpot on the training frames), the hyperparameters, the optimiser, the
learning-rate schedule, the loss weights, the batch size, the number of epochs and the seed
of the shuffling.  This script builds

    PairwiseDistances -> PaiNN(n_atom_basis, n_interactions, BesselRBF | GaussianRBF, CosineCutoff)
      -> Atomwise(sum, schnetpack's default 2-layer MLP) -> ScaleProperty(energy, scale)
      -> Forces (autograd)

and trains it with a plain PyTorch loop (no pytorch-lightning):

* inputs: one dict per structure in the layout of schnetpack's datasets (n_atoms, Z, R, cell,
  pbc, idx) passed once through schnetpack's neighbour-list transform (MatScipyNeighborList or
  ASENeighborList) and CastTo32, so neighbour lists are computed once, before training;
  batches are made per step with schnetpack.data.loader._atoms_collate_fn, as AtomsLoader does;
* targets: energy - sum_i E0[Z_i] (computed in float64 on the host, then float32) and forces;
* batches: epoch e visits the training structures in
  numpy.random.default_rng((seed, e)).permutation(n_train) order, in consecutive chunks of
  batch_size: exactly jaxpot.data.GraphLoader's batches for molecules of one size;
* loss: schnetpack.task.ModelOutput with torch.nn.MSELoss on the total energy, weight
  w_E / n_atoms**2, and on the force components, weight w_F; for a data set of one molecule
  size this equals jaxpot's w_E * MSE(energy per atom) + w_F * MSE(force components);
* optimiser: torch.optim.Adam (amsgrad=True for "amsgrad"), betas (0.9, 0.999), eps 1e-8, no
  weight decay; learning rate set before every step by the same function as jaxpot's
  (jaxpot.train.optim.learning_rate, copied below); optional global-norm clipping;
* validation after every epoch, in eval mode (forces still by autograd), in file order.

Prints one JSON line (the summary) and writes the per-epoch history as JSON lines to
--history.  Epoch times come from epoch_clock.EpochClock (the same file jaxpot's side uses).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from epoch_clock import EpochClock, summarize_epochs  # noqa: E402


def learning_rate(step: int, total_steps: int, base_lr: float, schedule: str = "cosine",
                  warmup_steps: int = 0, final_fraction: float = 0.01) -> float:
    """jaxpot.train.optim.learning_rate (without the plateau factor), copied verbatim."""
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "cosine":
        t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return base_lr * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * t)))
    if schedule == "constant":
        return base_lr
    raise ValueError(f"unknown schedule {schedule!r}; choose cosine or constant")


def import_schnetpack():
    # schnetpack 2.0.4's data/loader.py does
    # `from torch.utils.data.dataloader import _collate_fn_t, T_co`; newer torch no longer
    # defines T_co there.  It is only a typing TypeVar: supply one (as the speed harness does).
    import typing

    import torch.utils.data.dataloader as _tdl

    if not hasattr(_tdl, "T_co"):
        _tdl.T_co = typing.TypeVar("T_co", covariant=True)
    import schnetpack

    return schnetpack


def pkg_version(name: str):
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001
        return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocol", required=True, help="protocol JSON written by benchmarks/accuracy.py")
    p.add_argument("--history", default=None, help="write per-epoch JSON lines here")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: the protocol's)")
    args = p.parse_args(argv)

    t_start = time.perf_counter()
    proto = json.loads(open(args.protocol).read())
    hp, tr = proto["model"], proto["training"]
    threads = args.threads if args.threads is not None else proto["threads"]

    import ase.io
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    torch.set_default_dtype(torch.float32)
    spk = import_schnetpack()
    import schnetpack.properties as props
    import schnetpack.transform as trn
    from schnetpack.data.loader import _atoms_collate_fn

    # ---- data: the same frames, indices and reference energies as jaxpot ----
    frames = ase.io.read(proto["data"], index=":")
    if len(frames) != proto["n_frames"]:
        raise SystemExit(f"{proto['data']} has {len(frames)} frames, the protocol says {proto['n_frames']}")
    e0 = {int(z): float(e) for z, e in zip(proto["species"], proto["e0_eV"])}

    def subset(indices):
        return [frames[i] for i in indices]

    train_frames, valid_frames = subset(proto["train_indices"]), subset(proto["valid_indices"])
    for name, fr in (("train", train_frames), ("valid", valid_frames)):
        got = float(np.sum([a.get_potential_energy() for a in fr]))
        want = proto["checks"][f"{name}_energy_sum_eV"]
        if abs(got - want) > 1e-6 * max(1.0, abs(want)):
            raise SystemExit(f"{name} energies differ from jaxpot's: sum {got!r} vs {want!r} eV")
    sizes = {len(a) for a in train_frames + valid_frames}
    if len(sizes) != 1:
        raise SystemExit("the energy-loss weight w_E / n_atoms**2 matches jaxpot's per-atom loss only for one "
                         f"molecule size; this data has sizes {sorted(sizes)}")
    n_atoms = sizes.pop()

    nl_cls = {"matscipy": trn.MatScipyNeighborList, "ase": trn.ASENeighborList}[proto["peer"]["neighbor_list"]]
    nl = nl_cls(cutoff=hp["cutoff"])
    cast = trn.CastTo32()

    def sample(atoms, k):
        e_ref = float(atoms.get_potential_energy()) - sum(e0[int(z)] for z in atoms.numbers)  # float64
        inputs = {
            props.idx: torch.tensor([k]),
            props.n_atoms: torch.tensor([len(atoms)]),
            props.Z: torch.from_numpy(atoms.get_atomic_numbers()),
            props.R: torch.from_numpy(atoms.get_positions()),
            props.cell: torch.from_numpy(atoms.get_cell().array).view(-1, 3, 3),
            props.pbc: torch.from_numpy(atoms.get_pbc()).view(-1, 3),
            "energy": torch.tensor([e_ref], dtype=torch.float64),
            "forces": torch.from_numpy(np.asarray(atoms.get_forces(), dtype=np.float64)),
        }
        return cast(nl(inputs))

    t0 = time.perf_counter()
    train_samples = [sample(a, k) for k, a in enumerate(train_frames)]
    valid_samples = [sample(a, k) for k, a in enumerate(valid_frames)]
    prep_s = time.perf_counter() - t0
    n_edges_train = int(sum(s[props.idx_i].shape[0] for s in train_samples))

    # ---- model ----
    torch.manual_seed(proto.get("init_seed", proto["seed"]))
    if hp["peer_radial_basis"] == "bessel":
        rbf = spk.nn.BesselRBF(n_rbf=hp["num_rbf"], cutoff=hp["cutoff"])
    else:
        rbf = spk.nn.GaussianRBF(n_rbf=hp["num_rbf"], cutoff=hp["cutoff"])
    representation = spk.representation.PaiNN(
        n_atom_basis=hp["features"], n_interactions=hp["num_interactions"], radial_basis=rbf,
        cutoff_fn=spk.nn.CosineCutoff(hp["cutoff"]),
    )
    model = spk.model.NeuralNetworkPotential(
        representation=representation,
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[
            spk.atomistic.Atomwise(n_in=hp["features"], output_key="energy", aggregation_mode="sum"),
            trn.ScaleProperty(input_key="energy", output_key="energy",
                              scale=torch.tensor([float(proto["scale"])])),
            spk.atomistic.Forces(energy_key="energy", force_key="forces"),
        ],
        input_dtype_str="float32",
    )
    n_params = int(sum(prm.numel() for prm in model.parameters()))

    w_e, w_f = float(tr["weights"]["energy"]), float(tr["weights"]["forces"])
    outputs = [
        spk.task.ModelOutput(name="energy", loss_fn=torch.nn.MSELoss(), loss_weight=w_e / n_atoms**2, metrics={}),
        spk.task.ModelOutput(name="forces", loss_fn=torch.nn.MSELoss(), loss_weight=w_f, metrics={}),
    ]
    if tr["optimizer"] not in ("adam", "amsgrad"):
        raise SystemExit(f"optimizer {tr['optimizer']!r}: this peer script knows adam and amsgrad")
    optimizer = torch.optim.Adam(model.parameters(), lr=tr["learning_rate"], betas=(0.9, 0.999), eps=1e-8,
                                 weight_decay=0.0, amsgrad=tr["optimizer"] == "amsgrad")

    bs, n_train = int(tr["batch_size"]), len(train_samples)
    steps_per_epoch = math.ceil(n_train / bs)
    total_steps = tr["epochs"] * steps_per_epoch
    order0 = np.random.default_rng((proto["seed"], 0)).permutation(n_train)
    if proto["checks"].get("epoch0_order_head") and order0[:20].tolist() != proto["checks"]["epoch0_order_head"]:
        raise SystemExit("the epoch-0 order differs from jaxpot's GraphLoader's")

    def split_targets(batch):
        # the model writes its predictions under the same keys into its input dict (as
        # AtomisticTask, keep the targets apart)
        target = {k: batch.pop(k) for k in ("energy", "forces")}
        return batch, target

    def evaluate():
        model.eval()
        sums = {"e_abs": 0.0, "e_sq": 0.0, "epa_abs": 0.0, "epa_sq": 0.0, "f_abs": 0.0, "f_sq": 0.0, "n": 0, "nf": 0}
        for a in range(0, len(valid_samples), bs):
            batch, target = split_targets(_atoms_collate_fn(valid_samples[a:a + bs]))
            pred = model(batch)
            de = (pred["energy"].detach().double() - target["energy"].double()).numpy()
            dpa = de / batch[props.n_atoms].double().numpy()
            df = (pred["forces"].detach().double() - target["forces"].double()).numpy()
            sums["e_abs"] += float(np.abs(de).sum())
            sums["e_sq"] += float((de**2).sum())
            sums["epa_abs"] += float(np.abs(dpa).sum())
            sums["epa_sq"] += float((dpa**2).sum())
            sums["f_abs"] += float(np.abs(df).sum())
            sums["f_sq"] += float((df**2).sum())
            sums["n"] += de.size
            sums["nf"] += df.size
        model.train()
        n, nf = sums["n"], sums["nf"]
        res = {"energy_mae": sums["e_abs"] / n, "energy_rmse": math.sqrt(sums["e_sq"] / n),
               "energy_per_atom_mae": sums["epa_abs"] / n, "energy_per_atom_rmse": math.sqrt(sums["epa_sq"] / n),
               "forces_mae": sums["f_abs"] / nf, "forces_rmse": math.sqrt(sums["f_sq"] / nf)}
        res["valid_loss"] = w_e * res["energy_per_atom_rmse"] ** 2 + w_f * res["forces_rmse"] ** 2
        return res

    # ---- training ----
    model.train()
    clock, epochs, history = EpochClock(), [], []
    hist_fh = open(args.history, "w") if args.history else None
    step, stopped, valid_s = 0, "finished", 0.0
    t_train = time.perf_counter()
    try:
        for epoch in range(tr["epochs"]):
            order = np.random.default_rng((proto["seed"], epoch)).permutation(n_train)
            losses = []
            clock.start()
            for a in range(0, n_train, bs):
                lr = learning_rate(step, total_steps, tr["learning_rate"], tr["schedule"], 0, tr["final_lr_fraction"])
                for group in optimizer.param_groups:
                    group["lr"] = lr
                batch, target = split_targets(_atoms_collate_fn([train_samples[i] for i in order[a:a + bs]]))
                optimizer.zero_grad(set_to_none=True)
                pred = model(batch)
                loss = sum(o.calculate_loss(pred, target) for o in outputs)
                loss.backward()
                if tr.get("clip_norm"):
                    torch.nn.utils.clip_grad_norm_(model.parameters(), tr["clip_norm"])
                optimizer.step()
                step += 1
                value = float(loss.detach())
                if not math.isfinite(value):
                    stopped = "nan"
                    break
                losses.append(value)
            timing = clock.stop()
            if stopped != "finished":
                break
            epochs.append(timing)
            tv = time.perf_counter()
            record = {"epoch": epoch, "step": step, "lr": lr, "train_loss": float(np.mean(losses)),
                      "epoch_time_s": timing["wall_s"], "other_busy_cores": timing["other_busy_cores"],
                      "valid": evaluate()}
            valid_s += time.perf_counter() - tv
            history.append(record)
            if hist_fh:
                hist_fh.write(json.dumps(record) + "\n")
                hist_fh.flush()
    finally:
        if hist_fh:
            hist_fh.close()
    train_wall_s = time.perf_counter() - t_train

    def errors(rec):
        v = rec["valid"]
        return {"epoch": rec["epoch"], "energy_mae_meV": v["energy_mae"] * 1e3, "forces_mae_meV_A": v["forces_mae"] * 1e3,
                "energy_rmse_meV": v["energy_rmse"] * 1e3, "forces_rmse_meV_A": v["forces_rmse"] * 1e3,
                "energy_per_atom_mae_meV": v["energy_per_atom_mae"] * 1e3, "valid_loss": v["valid_loss"]}

    best = min(history, key=lambda r: r["valid"]["valid_loss"]) if history else None
    record = {
        "code": "schnetpack",
        "model": "PaiNN",
        "stopped": stopped,
        "epochs": len(history),
        "epochs_asked": tr["epochs"],
        "n_train": n_train,
        "n_valid": len(valid_samples),
        "batch_size": bs,
        "steps_per_epoch": steps_per_epoch,
        **summarize_epochs(epochs),
        "compile_s": 0.0,
        "final": errors(history[-1]) if history else None,
        "best": errors(best) if best else None,
        "train_wall_s": round(train_wall_s, 2),
        "validation_wall_s": round(valid_s, 2),
        "data_prep_s": round(prep_s, 2),
        "total_wall_s": round(time.perf_counter() - t_start, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "n_params": n_params,
        "n_edges_train": n_edges_train,
        "threads": torch.get_num_threads(),
        "threads_how": "torch.set_num_threads",
        "hyper": {"n_atom_basis": hp["features"], "n_interactions": hp["num_interactions"], "n_rbf": hp["num_rbf"],
                  "cutoff": hp["cutoff"],
                  "radial_basis": "BesselRBF sin(n pi r/rc)/r" if hp["peer_radial_basis"] == "bessel" else "GaussianRBF",
                  "cutoff_fn": "CosineCutoff", "readout": "Atomwise(sum, 128-64-1 SiLU MLP)",
                  "energy_scale": proto["scale"], "neighbor_list": nl_cls.__name__,
                  "init": "schnetpack defaults (Dense: Xavier uniform, zero bias; Embedding: N(0, 1))"},
        "training": {**tr, "loss": f"ModelOutput MSE: energy (total) weight w_E/{n_atoms}^2 = {w_e / n_atoms**2:.6g}, "
                                   f"forces weight {w_f:g}", "ema": None, "swa": None},
        "versions": {"schnetpack": pkg_version("schnetpack"), "torch": torch.__version__,
                     "numpy": np.__version__, "ase": pkg_version("ase"), "matscipy": pkg_version("matscipy")},
    }
    print(json.dumps(record), flush=True)
    return 0 if stopped == "finished" else 1


if __name__ == "__main__":
    sys.exit(main())
