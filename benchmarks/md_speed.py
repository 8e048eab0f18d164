#!/usr/bin/env python
"""MD speed: steps per second of one model driven by jax-md and driven step by step by ASE,
with mace-torch through ASE as the peer, in one command.

For each system and model, fresh subprocesses (never two at once) run NVE velocity Verlet at
0.5 fs from Maxwell-Boltzmann momenta at 300 K (seeded) with random weights:

* ``jaxmd``: ``jaxpot.md.simulate(potential, atoms, "nve", ...)``: the neighbour list on
  device (jax-md, sparse, skin 0.5 Å), ``write_every`` steps per jitted ``fori_loop`` chunk, one
  frame kept per chunk. Steps per second come from the frames' ``wall_time`` after the first
  frame (which is taken once the step function has compiled), so compilation is excluded and
  the host work between chunks (recording a frame) is included.
* ``ase``: ``ase.md.VelocityVerlet`` with ``jaxpot.Calculator(potential)``: every step the host
  builds the neighbour list (vesin), pads the graph to its bucket, copies it to the device and
  runs the same jitted energy + forces. Timed after ``--warmup`` steps (compilation excluded).
* ``mace-torch`` (``--peer mace-torch``): ``benchmarks/peers/mace_torch_ase_md.py`` in its own
  virtual environment, mace-torch 0.3.16's ``ScaleShiftMACE`` at the speed issue's
  hyperparameters, driven by the same ASE integrator through a calculator that does what
  ``mace.calculators.MACECalculator`` does each step.

The model's weights do not change its cost; the energy scale is set small (``--energy-scale``,
default 0.01) so that random forces do not tear the structure apart during the timed steps
(that would only change how often the neighbour list is rebuilt).

Systems: ``water192`` (first 192-atom frame of $DATA/periodic_water_deepmd/) and ``si512``
(diamond Si 4x4x4 cubic cells, rattled; peers_common.build_system), plus ``ethanol`` and
``3bpa`` for small molecules. One JSON line per run; a table at the end with the ratio
jax-md steps/s over ASE steps/s (the issue's target: at least 5x).

Examples:
  python benchmarks/md_speed.py --out results/md_speed.jsonl
  python benchmarks/md_speed.py --peer mace-torch --out results/md_speed.jsonl
  python benchmarks/md_speed.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEERS_ENV = os.environ.get("PEERS", "/tmp/peers")
sys.path.insert(0, str(HERE))
from speed import DEFAULT_DATA, DEFAULT_PEERS_HARNESS, build_case, import_peers_common, pin_threads  # noqa: E402

SYSTEMS = ["water192", "si512"]
DRIVERS = ["jaxmd", "ase"]


def momenta(atoms, temperature: float, seed: int):
    import numpy as np
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
    Stationary(atoms)
    return atoms


def run_child(args) -> dict:
    cpus = pin_threads(args.threads)
    pc = import_peers_common(args.peers_harness)
    import jax
    import numpy as np
    from ase import units
    from ase.md.verlet import VelocityVerlet

    import jaxpot
    import jaxpot.md

    atoms, species, source = build_case(pc, args.system, 0.03, args.seed, args.data_dir)
    atoms = momenta(atoms, args.temperature, args.seed)
    pot = jaxpot.Potential.create(args.model, species, args.cutoff, seed=args.seed, dtype=args.dtype,
                                  scale=args.energy_scale)
    rec = {"code": "jaxpot", "model": args.model, "driver": args.driver, "system": args.system,
           "dtype": args.dtype, "n_atoms": len(atoms), "source": source, "threads": len(cpus)}
    if args.driver == "jaxmd":
        t0 = time.perf_counter()
        frames = jaxpot.md.simulate(pot, atoms, "nve", temperature=args.temperature, timestep=args.timestep,
                                    steps=args.steps, write_every=args.write_every, progress=False,
                                    seed=args.seed)
        total = time.perf_counter() - t0
        first, last = frames[0].info, frames[-1].info
        rate = (last["step"] - first["step"]) / (last["wall_time"] - first["wall_time"])
        energies = [f.info["total_energy"] for f in frames]
        rec.update(steps=int(last["step"]), write_every=args.write_every, steps_per_s=rate,
                   ms_per_step=1e3 / rate, startup_s=round(first["wall_time"], 3), total_s=round(total, 3),
                   reallocations=int(last["reallocations"]),
                   total_energy_span_eV=float(np.ptp(energies)))
    else:
        atoms.calc = jaxpot.Calculator(pot)
        dyn = VelocityVerlet(atoms, timestep=args.timestep * units.fs)
        t0 = time.perf_counter()
        dyn.run(args.warmup)
        startup = time.perf_counter() - t0
        e_start = atoms.get_total_energy()
        t1 = time.perf_counter()
        dyn.run(args.steps)
        wall = time.perf_counter() - t1
        rate = args.steps / wall
        rec.update(steps=args.steps, warmup=args.warmup, steps_per_s=rate, ms_per_step=1e3 / rate,
                   startup_s=round(startup, 3), total_s=round(startup + wall, 3),
                   compilations=atoms.calc.compilations(),
                   total_energy_span_eV=float(abs(atoms.get_total_energy() - e_start)))
    rec.update(versions={"jaxpot": jaxpot.__version__, "jax": jax.__version__},
               machine={**pc.machine_info(), "jax_backend": jax.default_backend()})
    return rec


def child_cmd(args, system: str, model: str, driver: str, dtype: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", "--system", system, "--model", model,
            "--driver", driver, "--dtype", dtype, "--steps", str(args.steps_for(system, driver, model)),
            "--warmup", str(args.warmup), "--write-every", str(args.write_every), "--threads", str(args.threads),
            "--seed", str(args.seed), "--timestep", str(args.timestep), "--temperature", str(args.temperature),
            "--cutoff", str(args.cutoff), "--energy-scale", str(args.energy_scale),
            "--data-dir", args.data_dir, "--peers-harness", args.peers_harness]


def peer_cmd(args, system: str, dtype: str) -> list[str]:
    python = args.peer_python or str(Path(PEERS_ENV) / "torch-venv" / "bin" / "python")
    return [python, str(HERE / "peers" / "mace_torch_ase_md.py"), "--system", system, "--dtype", dtype,
            "--steps", str(args.steps_for(system, "ase", "mace-torch")), "--warmup", str(args.warmup),
            "--threads", str(args.threads), "--seed", str(args.seed), "--timestep", str(args.timestep),
            "--temperature", str(args.temperature), "--energy-scale", str(args.energy_scale),
            "--data-dir", args.data_dir, "--peers-harness", args.peers_harness]


def run(cmd: list[str], timeout: float) -> dict | None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"# failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def print_table(records: list[dict]) -> None:
    print("# steps per second (NVE, 0.5 fs); ratio = jax-md / ASE loop of the same model")
    print(f"# {'system':9s} {'model':10s} {'dtype':8s} {'jax-md':>9s} {'ASE loop':>9s} {'ratio':>6s} {'mace-torch ASE':>15s}")
    keys = sorted({(r["system"], r["model"], r["dtype"]) for r in records if r["code"] == "jaxpot"})
    for system, model, dtype in keys:
        def get(code, driver):
            for r in records:
                if (r["system"], r["dtype"], r["code"], r.get("driver")) == (system, dtype, code, driver) and (
                        code != "jaxpot" or r["model"] == model):
                    return r["steps_per_s"]
            return None

        jm, al, mt = get("jaxpot", "jaxmd"), get("jaxpot", "ase"), get("mace-torch", "ase")
        ratio = f"{jm / al:6.2f}" if jm and al else "     -"
        fmt = lambda x: f"{x:9.2f}" if x else "        -"  # noqa: E731
        print(f"# {system:9s} {model:10s} {dtype:8s} {fmt(jm)} {fmt(al)} {ratio} {fmt(mt):>15s}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated: water192, si512, ethanol, 3bpa")
    p.add_argument("--models", default="painn", help="comma-separated registered jaxpot models")
    p.add_argument("--dtypes", default="float32", help="comma-separated: float32, float64")
    p.add_argument("--peer", choices=["none", "mace-torch"], default="none")
    p.add_argument("--peer-python", default=None, help="peer interpreter (default $PEERS/torch-venv/bin/python)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default: per system and driver)")
    p.add_argument("--warmup", type=int, default=3, help="ASE: untimed steps first (compilation)")
    p.add_argument("--write-every", type=int, default=50, help="jax-md: steps per jitted chunk")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timestep", type=float, default=0.5, help="fs")
    p.add_argument("--temperature", type=float, default=300.0, help="K (initial momenta)")
    p.add_argument("--cutoff", type=float, default=5.0)
    p.add_argument("--energy-scale", type=float, default=0.01)
    p.add_argument("--data-dir", default=DEFAULT_DATA)
    p.add_argument("--peers-harness", default=DEFAULT_PEERS_HARNESS)
    p.add_argument("--quick", action="store_true", help="few steps, water192 only")
    p.add_argument("--out", default=None, help="append JSON lines here")
    p.add_argument("--timeout", type=float, default=1800.0)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--system", default=None, help=argparse.SUPPRESS)
    p.add_argument("--model", default=None, help=argparse.SUPPRESS)
    p.add_argument("--driver", choices=DRIVERS, default=None, help=argparse.SUPPRESS)
    p.add_argument("--dtype", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    def steps_for(system: str, driver: str, model: str) -> int:
        if args.steps is not None:
            return args.steps
        if args.quick:
            return 20 if driver == "ase" else 100
        big = system in ("si512",)
        if model == "mace-torch":
            return 5 if big else 10
        # jax-md: 300 steps (150 fs). Longer runs let the random model's molecules fly apart, which only
        # measures neighbour-list reallocations.
        return (100 if big else 200) if driver == "ase" else 300

    args.steps_for = steps_for
    if args.child:
        print(json.dumps(run_child(args)), flush=True)
        return 0

    systems = ["water192"] if args.quick else args.systems.split(",")
    records = []
    out = open(args.out, "a") if args.out else None
    for system in systems:
        for dtype in args.dtypes.split(","):
            jobs = [(model, driver) for model in args.models.split(",") for driver in DRIVERS]
            if args.peer == "mace-torch":
                jobs.append(("mace-torch", "ase"))
            for model, driver in jobs:
                cmd = peer_cmd(args, system, dtype) if model == "mace-torch" else child_cmd(
                    args, system, model, driver, dtype)
                print(f"# running {model} {driver} {system} {dtype}", file=sys.stderr, flush=True)
                rec = run(cmd, args.timeout)
                if rec is None:
                    continue
                records.append(rec)
                print(json.dumps(rec), flush=True)
                if out:
                    out.write(json.dumps(rec) + "\n")
                    out.flush()
    print_table(records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
