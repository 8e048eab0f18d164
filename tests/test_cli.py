"""The command line: models, example, evaluate, and its error messages."""

from __future__ import annotations

import json

from ase.io import write
from conftest import ethanol

from jaxpot.cli import main


def test_models_lists_the_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "painn" in out and "schnet" in out and '"features": 128' in out


def test_example_and_evaluate(tmp_path, capsys):
    assert main(["example", "--out", str(tmp_path / "ex"), "--features", "16"]) == 0
    report = json.loads((tmp_path / "ex" / "example.json").read_text())
    assert report["reload_identical"] and report["fd_max_deviation"] < 1e-5
    frames = [ethanol(seed=k) for k in range(2)]
    write(tmp_path / "frames.xyz", frames)
    capsys.readouterr()
    assert main(["evaluate", report["model_dir"], str(tmp_path / "frames.xyz")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["n_atoms"] for r in rows] == [9, 9] and rows[0]["energy"] != rows[1]["energy"]


def test_evaluate_reports_bad_input(tmp_path, capsys):
    main(["example", "--out", str(tmp_path / "ex"), "--features", "8"])
    atoms = ethanol()
    atoms.numbers[0] = 17
    write(tmp_path / "bad.xyz", atoms)
    assert main(["evaluate", str(tmp_path / "ex" / "painn_untrained"), str(tmp_path / "bad.xyz")]) == 2
    assert "Cl" in capsys.readouterr().err


def test_quickstart_small(tmp_path, capsys):
    out = tmp_path / "qs"
    args = ["quickstart", "--out", str(out), "--epochs", "2", "--features", "8", "--n-train", "20", "--n-valid", "10",
            "--n-test", "10", "--no-progress"]
    assert main(args) == 0
    for name in ("model/config.json", "metrics.jsonl", "learning_curves.png", "parity_forces_valid.png", "summary.json"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["valid"]["forces_mae"] > 0 and "test" in summary
    assert "force MAE" in capsys.readouterr().out


def test_train_command_and_config_error(tmp_path, capsys):
    from jaxpot.reference import bundled_path

    config = tmp_path / "c.yaml"
    config.write_text(
        f"model: {{name: schnet, cutoff: 4.0, hparams: {{features: 8, num_interactions: 1}}}}\n"
        f"data: {{train: {bundled_path('ethanol')}, index: ':24', n_valid: 4, batch_size: 4}}\n"
        f"training: {{epochs: 1, progress: false}}\noutput: {tmp_path / 'run'}\n"
    )
    assert main(["train", str(config)]) == 0
    assert (tmp_path / "run" / "model" / "params.msgpack").exists()
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run" / "model"), str(bundled_path("ethanol")), "--index", ":8"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n_structures"] == 8 and metrics["forces_mae"] > 0
    config.write_text("model: {name: schnet}\ndata: {train: x.xyz}\ntraining: {epoch: 3}\n")
    assert main(["train", str(config)]) == 2
    assert "did you mean 'epochs'" in capsys.readouterr().err
