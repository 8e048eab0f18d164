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
