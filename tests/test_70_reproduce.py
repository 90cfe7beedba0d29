"""`make reproduce` end to end: profile validation, a tiny real profile through papermill into a working folder,
stale runs set aside, failure and resume, the verdict against a reference, promotion, and a reference left untouched."""
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
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


def reproduce(cwd, *args, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "tse_repro.experiments", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def tree_digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("body, fix", [
    ("methods: {both: {tet: true, tse: true}}", "exclusive"),
    ("methods: {x: {method: tse, tau_f: 1.5}}", "methods.x.tau_f must be"),
    ("recipe: {epoch: 3}\nmethods: {x: {method: tse}}", "unknown key 'epoch' in recipe"),
    ("methods: {x: {method: tse}}\nseeds: [a]", "seeds must be"),
])
def test_bad_profile_exits_2_before_running(tmp_path, capsys, body, fix):
    from tse_repro.experiments import main
    profile = tmp_path / "bad.yaml"
    profile.write_text(body + "\n")
    with pytest.raises(SystemExit) as e:
        main(["--profile", str(profile), "--work", str(tmp_path / "runs"), "--reference", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and fix in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "results").exists()


def test_shipped_profiles_list(capsys):
    from tse_repro.experiments import main
    assert main(["--profile", "demo", "--list", "--work", "/nonexistent-runs"]) == 0
    out = capsys.readouterr().out
    assert "baseline-s0" in out and "tse-conservative-s1" in out and "pending" in out


def test_tiny_profile_end_to_end(tmp_path):
    """Three `reproduce` calls and a promotion of a 3-run profile through papermill:
    1. an interrupted run resumes, a stale folder (other settings) is set aside and its run trains afresh, a run with a
       corrupt checkpoint fails in one line without stopping the others; exit status 1, the report lists the failure;
    2. the profile is fixed (a new tau_f for the failed variant): that run trains again and reports the new value;
       the others are skipped; then the sweep is promoted to a reference;
    3. a rerun skips everything, compares with the reference, every cell reproduces, and the reference is untouched."""
    from tse_repro.config import TrainConfig
    from tse_repro.profiles import expand, load_profile
    from tse_repro.stale import identity_record
    from tse_repro.runs import RunFolder
    from tse_repro.train import train
    profile, work, reference = tmp_path / "tiny.yaml", tmp_path / "runs", tmp_path / "results"
    profile.write_text(TINY_PROFILE)
    runs_dir = work / "tiny" / "runs"
    by_name = {r.name: r for r in expand(load_profile(profile))}
    baseline = RunFolder(runs_dir / "baseline-s0")
    train(TrainConfig(**{**by_name["baseline-s0"].config, "out": str(baseline.path)}))
    baseline.file("summary").unlink()                               # interrupted after its last checkpoint
    baseline.write_identity(identity_record(by_name["baseline-s0"], "tiny", 1))
    before = baseline.file("metrics").read_text()
    old_tet = dataclasses.replace(by_name["tet-s0"], config={**by_name["tet-s0"].config, "lr": 0.5})
    RunFolder(runs_dir / "tet-s0").path.mkdir(parents=True)         # a run of settings the profile no longer has
    RunFolder(runs_dir / "tet-s0").write_config(TrainConfig(**old_tet.config))
    RunFolder(runs_dir / "tet-s0").write_identity(identity_record(old_tet, "tiny", 1))
    tse = RunFolder(runs_dir / "tse-s0"); tse.path.mkdir()
    tse.write_config(TrainConfig(**{**by_name["tse-s0"].config, "out": str(tse.path)}))
    tse.write_identity(identity_record(by_name["tse-s0"], "tiny", 1))
    tse.file("checkpoint").write_bytes(b"PK\x03\x04 truncated")     # corrupt state: the resume must fail, in one line

    r = reproduce(tmp_path, "--profile", profile.name, "--work", work.name, "--reference", reference.name)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "baseline-s0: resuming" in r.stdout and "tse-s0: resuming" in r.stdout, r.stdout
    assert "tet-s0: its settings changed since it ran (lr)" in r.stdout and "tet-s0: starting" in r.stdout, r.stdout
    assert "checkpoint.pt is unreadable" in tse.error().splitlines()[0]
    assert baseline.file("metrics").read_text() == before
    for name in ("baseline-s0", "tet-s0"):
        summary = RunFolder(runs_dir / name).summary()
        assert summary["epochs_done"] == 1 and len(summary["final_acc_by_t"]) == 2
        assert (runs_dir / name / "run.ipynb").exists() and (runs_dir / name / "checkpoint.pt").exists()
    assert [p.name.split("-")[0] for p in (work / "tiny" / "stale").iterdir()] == ["tet"]
    report = (work / "tiny" / "report.md").read_text()
    assert "| tse-s0 | failed |" in report and "| baseline | baseline (SDT) |" in report and "could not be obtained" in report
    assert "no reference in" in r.stdout

    profile.write_text(TINY_PROFILE.replace("tau_f: 0.3", "tau_f: 0.4"))  # the fix
    r = reproduce(tmp_path, "--profile", profile.name, "--work", work.name, "--reference", reference.name)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "baseline-s0: complete, skipped" in r.stdout and "tet-s0: complete, skipped" in r.stdout and "tse-s0: starting" in r.stdout
    assert RunFolder(runs_dir / "tse-s0").summary()["config"]["tau_f"] == 0.4
    assert "| tse | TSE (tau_f=0.4, kappa=0.5) | 1 |" in (work / "tiny" / "report.md").read_text()
    figures = {p.name for p in (work / "tiny" / "figures").iterdir()}
    assert {"curves.png", "accuracy_by_t.png", "erased_fraction.png", "tse_masks.png"} <= figures, figures
    r = reproduce(tmp_path, "--profile", profile.name, "--work", work.name, "--reference", reference.name, "--promote")
    assert r.returncode == 0 and (reference / "tiny" / "report.md").exists(), r.stdout + r.stderr
    for name in ("runs/tse-s0/config.json", "runs/tse-s0/summary.json", "runs/tse-s0/run.ipynb", "report.ipynb", "report.md"):
        assert str(tmp_path) not in (reference / "tiny" / name).read_text(), name   # no path of this machine

    frozen = tree_digest(reference)
    r = reproduce(tmp_path, "--profile", profile.name, "--work", work.name, "--reference", reference.name)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("complete, skipped") == 3 and "starting" not in r.stdout
    assert r.stdout.strip().splitlines()[-1] == "verdict: 6 of 6 cells reproduced", r.stdout[-2000:]
    assert tree_digest(reference) == frozen
