"""`make reproduce` end to end: profile validation, a tiny real profile through papermill, failure and resume."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

TINY_PROFILE = """\
description: test-only profile, 1 epoch on a few digits
recipe: {arch: resnet_tiny, width: 0.25, dataset: digits, train_per_class: 12, test_per_class: 6, T: 2,
         epochs: 1, batch_size: 40}
seeds: [0]
methods:
  baseline: {method: baseline}
  tse: {method: tse, tau_f: 0.3, kappa: 0.5}
  tet: {method: tet}
"""


def reproduce(root, *args, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "tse_repro.experiments", *map(str, args)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("body, fix", [
    ("methods: {both: {tet: true, tse: true}}", "exclusive"),
    ("methods: {x: {method: tse, tau_f: 1.5}}", "tau"),
    ("recipe: {epoch: 3}\nmethods: {x: {method: tse}}", "unknown key 'epoch' in recipe"),
    ("methods: {x: {method: tse}}\nseeds: [a]", "seeds must be"),
])
def test_bad_profile_exits_2_before_running(tmp_path, capsys, body, fix):
    from tse_repro.experiments import main
    profile = tmp_path / "bad.yaml"
    profile.write_text(body + "\n")
    with pytest.raises(SystemExit) as e:
        main(["--profile", str(profile), "--results", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and fix in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "results").exists()


def test_shipped_profiles_list(capsys):
    from tse_repro.experiments import main
    assert main(["--profile", "demo", "--list", "--results", "/nonexistent-results"]) == 0
    out = capsys.readouterr().out
    assert "baseline-s0" in out and "tse-conservative-s1" in out and "pending" in out


def test_tiny_profile_end_to_end(root, tmp_path):
    """One `reproduce` of a 3-run profile through papermill: an interrupted run resumes from its checkpoint, a
    fresh one trains, one fails (its folder holds another run's settings) without stopping the others; the
    report shows all three. Exit status 1 because a run failed."""
    from tse_repro.experiments import expand, load_profile
    from tse_repro.config import TrainConfig
    from tse_repro.train import train
    profile, results = tmp_path / "tiny.yaml", tmp_path / "results"
    profile.write_text(TINY_PROFILE)
    runs = results / "tiny" / "runs"
    baseline = next(r for r in expand(load_profile(profile)) if r.name == "baseline-s0")
    train(TrainConfig(**{**baseline.config, "out": str(runs / "baseline-s0")}))
    (runs / "baseline-s0" / "summary.json").unlink()      # interrupted after its last checkpoint
    before = (runs / "baseline-s0" / "metrics.jsonl").read_text()
    (runs / "tet-s0").mkdir(parents=True)
    (runs / "tet-s0" / "config.json").write_text(json.dumps({"lr": 0.5, "arch": "resnet_tiny"}))

    r = reproduce(root, "--profile", profile, "--results", results)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "baseline-s0: resuming" in r.stdout and "tse-s0: starting" in r.stdout, r.stdout
    assert "tet-s0" in r.stderr and "another run" in (runs / "tet-s0" / "error.txt").read_text()
    assert (runs / "baseline-s0" / "metrics.jsonl").read_text() == before
    for name in ("baseline-s0", "tse-s0"):
        summary = json.loads((runs / name / "summary.json").read_text())
        assert summary["epochs_done"] == 1 and len(summary["final_acc_by_t"]) == 2
        assert (runs / name / "run.ipynb").exists() and (runs / name / "checkpoint.pt").exists()
    assert json.loads((runs / "tse-s0" / "config.json").read_text())["tau_f"] == 0.3
    report = (results / "tiny" / "report.md").read_text()
    assert "| tet-s0 | failed |" in report and "| baseline | baseline (SDT) |" in report and "could not be obtained" in report
    figures = {p.name for p in (results / "tiny" / "figures").iterdir()}
    assert {"curves.png", "accuracy_by_t.png", "erased_fraction.png", "tse_masks.png"} <= figures, figures
    assert (results / "tiny" / "report.ipynb").exists() and (results / "tiny" / "results.csv").exists()
