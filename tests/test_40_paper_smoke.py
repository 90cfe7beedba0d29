"""Every paper profile's exact code path, end to end on CPU: `make reproduce PROFILE=<paper profile> ARGS=--smoke`
(its architecture, optimizer, augmentation, AMP setting, methods and report, one epoch on synthetic data), paper-imagenet
(its offline JPEG fixture) under torchrun with two gloo processes; and the refusal of a folder that holds only a training subset."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAPER = sorted(p.stem for p in (ROOT / "profiles").glob("paper-*.yaml"))


def reproduce(cwd, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "tse_repro.experiments", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    return r, time.perf_counter() - start


@pytest.mark.parametrize("profile, nproc", [(p, 2 if p == "paper-imagenet" else 1) for p in PAPER])
def test_paper_profile_smoke(tmp_path, profile, nproc):
    r, seconds = reproduce(tmp_path, "--profile", profile, "--smoke", "--nproc", str(nproc))
    print(f"smoke run of {profile} (nproc={nproc}): {seconds:.0f} s")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    root = tmp_path / "runs" / f"smoke-{profile}"
    report = (root / "report.md").read_text()
    assert "SMOKE RUN of" in report and "a smoke run" in r.stdout
    runs = sorted(p.name for p in (root / "runs").iterdir())
    assert runs == ["baseline-s0", "tet-s0", "tse-s0"], runs
    errors = {r: (root / "runs" / r / "error.txt").read_text()[:300] for r in runs if (root / "runs" / r / "error.txt").exists()}
    assert not errors, errors  # the evaluation after each run works on the smoke's data too
    if nproc == 2:
        import json
        summary = json.loads((root / "runs" / "tse-s0" / "summary.json").read_text())
        assert summary["world_size"] == 2 and summary["ranks_in_sync"] is True


def test_paper_profile_refuses_a_subset(tmp_path, shared_data):
    r, _ = reproduce(tmp_path, "--profile", "paper-cifar10", "--data-path", str(shared_data))
    err = r.stderr.strip()
    assert r.returncode == 2 and len(err.splitlines()) == 1, err
    assert "no full cifar10 train split" in err and "found cifar10_train_20k.npz: a subset is used only when named" in err, err
    assert not (tmp_path / "runs").exists()
    print(err)
