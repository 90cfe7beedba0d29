"""Process-level trainer tests: the CLI's exit codes, exact resume after SIGKILL, a 2-process torchrun (gloo)."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BIN = Path(sys.executable).parent
TINY = ["--arch", "resnet_tiny", "--width", "0.25", "--dataset", "digits", "--train-per-class", "16",
        "--test-per-class", "8", "--T", "2", "--batch-size", "32", "--no-progress"]


def run(args, env=None, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, **kw)


def history(folder):
    "Per-epoch metrics without the wall-clock figures."
    rows = [json.loads(l) for l in Path(folder, "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("img_per_s", "epoch_seconds")} for r in rows]


@pytest.mark.parametrize("flags, fix", [
    (["--tet", "--tse"], "TET"), (["--tse", "--tau-f", "0"], "tau"), (["--tse", "--kappa", "-0.5"], "kappa"),
    (["--arch", "alexnet"], "--arch"), (["--dataset", "imagenet21k"], "--dataset")])
def test_invalid_flags_exit_2_before_writing(tmp_path, flags, fix):
    out = tmp_path / "run"
    r = run([BIN / "tse-train", *TINY, "--out", str(out), *flags])
    assert r.returncode == 2, r.stderr
    assert fix in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not out.exists()


def test_folder_of_another_run_is_refused(tmp_path):
    out = tmp_path / "run"
    assert run([BIN / "tse-train", *TINY, "--epochs", "1", "--out", str(out)]).returncode == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    r = run([BIN / "tse-train", *TINY, "--epochs", "1", "--lr", "0.01", "--out", str(out)])
    assert r.returncode == 2 and "another run" in r.stderr, r.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path, shared_data):
    "Real CIFAR-10 with TET's random crops and flips, so the augmentation streams must resume exactly too."
    cifar = ["--dataset", "cifar10", "--data-path", str(shared_data), "--train-file", "cifar10_train_20k.npz", "--train-per-class", "8", "--test-per-class", "4"]
    args = [sys.executable, "-m", "tse_repro.train", *TINY, *cifar, "--epochs", "3", "--tse"]
    straight = run([*args, "--out", str(tmp_path / "a")])
    assert straight.returncode == 0, straight.stderr
    killed = run([*args, "--out", str(tmp_path / "b")], env={"TSE_TEST_KILL_AT": "1:2"})  # epoch 2, step 2
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(history(tmp_path / "b")) == 1
    resumed = run([*args, "--out", str(tmp_path / "b"), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from epoch 1" in resumed.stdout
    assert history(tmp_path / "b") == history(tmp_path / "a")
    a = torch.load(tmp_path / "a/checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b/checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_torchrun_two_processes_gloo(tmp_path):
    out = tmp_path / "ddp"
    r = run([BIN / "torchrun", "--standalone", "--nproc_per_node=2", "-m", "tse_repro.train", *TINY,
             "--epochs", "2", "--tse", "--out", str(out)])
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["ranks_in_sync"] is True
    assert r.stdout.count("tse-repro |") == 1, "only rank 0 prints"
    # The test accuracy summed over the two ranks' shards equals a single-process evaluation of the same weights.
    from tse_repro.datasets import get_datasets
    from tse_repro.loaders import make_loaders
    from tse_repro.runs import RunFolder
    from tse_repro.distributed import Dist
    from tse_repro.epoch import evaluate
    model, cfg = RunFolder(out).load_model()
    _, test_ds, _ = get_datasets(cfg.dataset, T=cfg.T, train_per_class=cfg.train_per_class, test_per_class=cfg.test_per_class)
    _, loader, _ = make_loaders(test_ds, test_ds, 32)
    assert evaluate(model, loader, cfg, Dist()) == pytest.approx(summary["final_acc_by_t"])
