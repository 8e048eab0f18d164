"""PNG plots people look at: learning curves and predicted-against-reference parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(history: list[dict], path) -> Path:
    """Training loss and validation errors (meV/atom, meV/Å, e·Å, Å³) against epoch."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].semilogy(epochs, [h["train_loss"] for h in history], label="train loss")
    if any("valid_loss" in h for h in history):
        axes[0].semilogy(epochs, [h.get("valid_loss", np.nan) for h in history], label="validation loss")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("weighted loss")
    axes[0].legend()
    for key, label, scale in (("energy_per_atom_mae", "energy MAE (meV/atom)", 1e3), ("forces_mae", "force MAE (meV/Å)", 1e3),
                              ("dipole_mae", "dipole MAE (e·Å)", 1.0), ("polarizability_mae", "polarizability MAE (Å³)", 1.0)):
        values = [h.get("valid", {}).get(key) for h in history]
        if any(v is not None for v in values):
            axes[1].semilogy(epochs, [np.nan if v is None else v * scale for v in values], label=label)
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("validation error")
    if axes[1].get_legend_handles_labels()[0]:
        axes[1].legend()
    else:  # trained without a validation set
        axes[1].text(0.5, 0.5, "no validation set", ha="center", va="center", transform=axes[1].transAxes)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_parity(reference: np.ndarray, predicted: np.ndarray, quantity: str, unit: str, path, scale: float = 1.0) -> Path:
    """Predicted against reference with MAE and RMSE in the title."""
    plt = _pyplot()
    ref, pred = np.asarray(reference) * scale, np.asarray(predicted) * scale
    err = pred - ref
    mae, rmse = np.abs(err).mean(), np.sqrt((err**2).mean())
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(ref, pred, s=4, alpha=0.5)
    lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel(f"reference {quantity} ({unit})")
    ax.set_ylabel(f"predicted {quantity} ({unit})")
    ax.set_title(f"{quantity}\nMAE {mae:.3g} {unit}, RMSE {rmse:.3g} {unit}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
