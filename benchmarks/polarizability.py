"""Tensor heads, measured: PaiNN polarizability on BPM malonaldehyde, PaiNN dipole on ethanol.

Polarizability (default task): ``../shared/data/dipole_polar/bpm_malonaldehyde_train.xyz``
(Sowa & Rossky, JCTC 20, 10071 (2024); 2000 geometries from 500 K MD, DFT polarizability
tensors in a.u. = Bohr³, converted to Å³ on reading). A fixed-seed split of that file into
training and validation structures; PaiNN with the polarizability head only (no energies or
forces in the data, so no backward pass through positions). Reports the validation MAE per
tensor component (xx, yy, zz, xy, xz, yz) and over all nine, in Å³.

Dipole (``--task ethanol-dipole``): the bundled GFN2-xTB ethanol set (energies, forces,
dipoles in e·Å), PaiNN with energy and dipole heads trained together; reports energy, force
and dipole validation MAEs and saves the model (``jaxpot.load``-able) to ``--save``.

Both go through the ``jaxpot train`` path (``jaxpot.train.run``), with the YAML config the
script prints, so what is measured is what a user gets.

    nice -n 10 python benchmarks/polarizability.py [--quick]
    nice -n 10 python benchmarks/polarizability.py --task ethanol-dipole --save /tmp/painn_ethanol_dipole
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import yaml

MALONALDEHYDE = str(Path(__file__).resolve().parents[2] / "shared/data/dipole_polar/bpm_malonaldehyde_train.xyz")
COMPONENTS = ("xx", "yy", "zz", "xy", "xz", "yz")


def polarizability_config(args) -> dict:
    n_train, n_valid, epochs = (300, 100, 6) if args.quick else (args.n_train, args.n_valid, args.epochs)
    return {
        "model": {"name": "painn", "cutoff": 5.0, "dtype": "float32", "seed": 0,
                  "hparams": {"features": args.features, "num_interactions": 3, "num_rbf": 20},
                  "properties": ["polarizability"]},
        "data": {"train": args.data, "n_train": n_train, "n_valid": n_valid, "n_test": 0, "seed": 0,
                 "units": {"polarizability": "a.u."}, "batch_size": 10, "valid_batch_size": 50},
        "training": {"epochs": epochs, "learning_rate": 1e-3, "schedule": "cosine", "warmup_steps": 20,
                     "ema_decay": 0.99, "swa_start": None, "weights": {"polarizability": 1.0},
                     "progress": False},
        "output": str(Path(args.output) / "polarizability"),
    }


def ethanol_dipole_config(args) -> dict:
    from jaxpot.reference.bundled import ethanol_path

    n_train, n_valid, epochs = (100, 50, 4) if args.quick else (args.n_train, args.n_valid, args.epochs)
    return {
        "model": {"name": "painn", "cutoff": 5.0, "dtype": "float32", "seed": 0,
                  "hparams": {"features": args.features, "num_interactions": 3, "num_rbf": 20},
                  "properties": ["dipole"]},
        "data": {"train": str(ethanol_path()), "n_train": n_train, "n_valid": n_valid, "n_test": 0, "seed": 0,
                 "batch_size": 10, "valid_batch_size": 50},
        "training": {"epochs": epochs, "learning_rate": 1e-3, "schedule": "cosine", "warmup_steps": 20,
                     "ema_decay": 0.99, "swa_start": None,
                     "weights": {"energy": 1.0, "forces": 100.0, "dipole": 100.0}, "progress": False},
        "output": str(Path(args.output) / "ethanol_dipole"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=["polarizability", "ethanol-dipole"], default="polarizability")
    parser.add_argument("--quick", action="store_true", help="small split and few epochs (a smoke run)")
    parser.add_argument("--data", default=MALONALDEHYDE)
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-valid", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--output", default="/tmp/jaxpot_tensor_heads")
    parser.add_argument("--save", default=None, help="copy the trained model directory here")
    args = parser.parse_args()

    from jaxpot.train.config import config_from_dict
    from jaxpot.train.run import run

    raw = polarizability_config(args) if args.task == "polarizability" else ethanol_dipole_config(args)
    print(yaml.safe_dump(raw, sort_keys=False))
    out = Path(raw["output"])
    if out.exists():
        shutil.rmtree(out)  # a fresh run, not a resume
    t0 = time.perf_counter()
    summary = run(config_from_dict(raw))
    elapsed = time.perf_counter() - t0
    valid = summary["valid"]
    report = {"task": args.task, "wall_s": round(elapsed, 1), "epochs": summary["epochs"], "valid": valid}
    if args.task == "polarizability":
        print(f"\nPaiNN polarizability, validation ({raw['data']['n_valid']} structures), MAE in Å³:")
        for c in COMPONENTS:
            print(f"  {c}: {valid[f'polarizability_{c}_mae']:.4f}")
        print(f"  all 9 components: {valid['polarizability_mae']:.4f} (RMSE {valid['polarizability_rmse']:.4f})")
    else:
        print(f"\nPaiNN energy+dipole on bundled ethanol, validation ({raw['data']['n_valid']} structures):")
        print(f"  energy {valid['energy_per_atom_mae'] * 1e3:.2f} meV/atom, forces {valid['forces_mae'] * 1e3:.1f} meV/Å, "
              f"dipole {valid['dipole_mae']:.4f} e·Å (x {valid['dipole_x_mae']:.4f}, y {valid['dipole_y_mae']:.4f}, "
              f"z {valid['dipole_z_mae']:.4f})")
    print(f"  wall time {elapsed:.0f} s")
    (out / "report.json").write_text(json.dumps(report, indent=2))
    if args.save:
        save = Path(args.save)
        if save.exists():
            shutil.rmtree(save)
        shutil.copytree(Path(summary["model"]), save)
        print(f"  model saved to {save}")


if __name__ == "__main__":
    main()
