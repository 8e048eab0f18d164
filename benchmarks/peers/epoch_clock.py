"""Per-epoch wall clock with a contention reading, shared by both sides of benchmarks/accuracy.py.

Standard library only, so that jaxpot's interpreter and a peer's (torch) interpreter import
the very same definitions: an epoch's time, and whether other processes held cores meanwhile.

``EpochClock.start()`` / ``stop()`` bracket one epoch's training steps. ``stop()`` returns
``wall_s`` (perf_counter), ``cpu_s`` (this process's CPU time, all its threads),
``machine_busy_cores`` (from /proc/stat, all CPUs) and ``other_busy_cores`` = machine busy
cores minus this process's (cpu_s / wall_s): the cores other processes kept busy. An epoch is
*clean* when ``other_busy_cores`` < ``CLEAN_MAX_OTHER``.

``summarize_epochs`` gives the statistics both codes report: the median over epochs >= 1
(epoch 0 holds jaxpot's compilation and both codes' warm-up), over the clean ones when at
least half of them are clean, else over all of them with ``contended: true``. The median CPU
time per epoch (``cpu_per_epoch_s``, all threads) is less sensitive to other processes than
the wall time and helps to judge a contended run.
"""

from __future__ import annotations

import os
import statistics
import time

CLEAN_MAX_OTHER = 0.25  # cores, as peers_common.bench's default


def _proc_stat_busy_total():
    """(busy, total) jiffies over all CPUs from /proc/stat, or None where it cannot be read."""
    try:
        with open("/proc/stat") as fh:
            f = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = f[3] + (f[4] if len(f) > 4 else 0)  # idle + iowait
    total = sum(f[:8])
    return total - idle, total


class EpochClock:
    def __init__(self):
        self._start = None

    def start(self) -> None:
        self._start = (time.perf_counter(), time.process_time(), _proc_stat_busy_total())

    def stop(self) -> dict:
        w1, c1, s1 = time.perf_counter(), time.process_time(), _proc_stat_busy_total()
        w0, c0, s0 = self._start
        wall, cpu = w1 - w0, c1 - c0
        machine = other = float("nan")
        if s0 is not None and s1 is not None and s1[1] > s0[1]:
            machine = (s1[0] - s0[0]) / (s1[1] - s0[1]) * (os.cpu_count() or 1)
            other = max(0.0, machine - cpu / max(wall, 1e-12))
        return {"wall_s": wall, "cpu_s": cpu, "machine_busy_cores": machine, "other_busy_cores": other}


def summarize_epochs(epochs: list[dict]) -> dict:
    """Timing fields from the per-epoch clock records (a list, epoch 0 first)."""
    out = {"first_epoch_s": round(epochs[0]["wall_s"], 3) if epochs else None}
    later = epochs[1:]
    if not later:
        out.update(time_per_epoch_s=None, time_per_epoch_all_s=None, n_epochs_timed=0, n_epochs_clean=0,
                   contended=None, other_busy_cores=None)
        return out
    clean = [e for e in later if not e["other_busy_cores"] > CLEAN_MAX_OTHER]  # NaN counts as clean
    use = clean if 2 * len(clean) >= len(later) else later
    others = [e["other_busy_cores"] for e in later if e["other_busy_cores"] == e["other_busy_cores"]]
    out.update(
        time_per_epoch_s=round(statistics.median(e["wall_s"] for e in use), 4),
        time_per_epoch_all_s=round(statistics.median(e["wall_s"] for e in later), 4),
        time_per_epoch_min_s=round(min(e["wall_s"] for e in later), 4),
        n_epochs_timed=len(use),
        n_epochs_clean=len(clean),
        contended=use is later and len(clean) < len(later),
        other_busy_cores=round(statistics.fmean(others), 2) if others else None,
        cpu_util=round(sum(e["cpu_s"] for e in later) / max(sum(e["wall_s"] for e in later), 1e-12), 2),
        cpu_per_epoch_s=round(statistics.median(e["cpu_s"] for e in later), 3),
    )
    return out
