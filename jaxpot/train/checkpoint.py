"""Checkpoints with orbax: the training state plus a JSON record of where the run stands.

Orbax writes every checkpoint into a temporary directory and renames it when complete, so a
run killed mid-write leaves the previous checkpoint intact; ``restore`` takes the newest
complete one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class Checkpoints:
    """Save and restore ``(state pytree, metadata dict)`` pairs under ``directory``."""

    def __init__(self, directory, keep: int = 2):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=False, cleanup_tmp_directories=True
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, meta: dict) -> None:
        state = jax.tree_util.tree_map(np.asarray, state)
        if int(step) in self.manager.all_steps():
            # same step saved mid-epoch; the end-of-epoch record (validation, schedule) supersedes it
            self.manager.delete(int(step))
        self.manager.save(
            int(step),
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
            force=True,
        )
        self.manager.wait_until_finished()

    def restore(self, template: Any, step: int | None = None) -> tuple[Any, dict] | None:
        """The newest (or ``step``'s) checkpoint as ``(state, meta)``; ``None`` if there is none."""
        step = self.latest_step() if step is None else step
        if step is None:
            return None
        abstract = jax.tree_util.tree_map(lambda x: np.zeros(np.shape(x), np.asarray(x).dtype), template)
        out = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
        )
        return out["state"], dict(out["meta"])

    def close(self) -> None:
        self.manager.close()
