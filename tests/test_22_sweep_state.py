"""Bad input, round 3, on the sweep driver's side: the reference is replaced whole or not at all, by one process at a
time; damaged runs are said to be damaged, set aside and trained again; two sweeps of one profile share the work; a full
disk stops a sweep in one line; misleading messages name the fix."""
import contextlib
import hashlib
import io
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_20_bad_input import assert_one_line, in_process, snapshot

PROFILE = """\
description: test-only profile of made-up runs
recipe: {arch: resnet_tiny, width: 0.25, dataset: digits, train_per_class: 12, test_per_class: 6, T: 2, epochs: 2, batch_size: 40}
seeds: [0]
methods:
  baseline: {method: baseline}
  tse: {method: tse, tau_f: 0.3, kappa: 0.5}
"""


def made_up_runner(acc):
    "A stand-in for the run notebook: a run folder as the trainer writes one, and a finished executed notebook."
    from tse_repro.runs import fake_run
    def runner(run, run_dir, nproc, resume):
        settings = {k: v for k, v in run.config.items() if k not in ("T", "epochs", "seed", "method", "out")}
        identity = Path(run_dir, "run.json").read_text()   # the driver's record, which fake_run would overwrite
        folder = fake_run(run_dir, run.variant, run.method, run.seed, T=run.config["T"], epochs=run.config["epochs"], acc=acc, **settings)
        folder.file("identity").write_text(identity)
        folder.path.joinpath("run.ipynb").write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {"papermill": {"status": "completed"}},
                                                                                 "source": "", "outputs": []}], "metadata": {}}))
    return runner


def sweep(tmp_path, acc=60.0, log=None):
    "A finished sweep of PROFILE in tmp_path/runs/p (made-up runs); returns the runs' statuses and what the driver said."
    from tse_repro.profiles import load_profile
    from tse_repro.sweep import run_profile
    (tmp_path / "p.yaml").write_text(PROFILE)
    said = []
    statuses = run_profile(load_profile(tmp_path / "p.yaml"), tmp_path / "runs", runner=made_up_runner(acc), log=said.append)
    return statuses, said


def digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def promote_command(tmp_path):
    return subprocess.Popen([sys.executable, "-m", "tse_repro.experiments", "--profile", "p.yaml", "--promote"], cwd=tmp_path, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def wait_for(path: Path, proc, seconds=120):
    for _ in range(seconds * 20):
        if path.exists() or proc.poll() is not None: return path.exists()
        time.sleep(0.05)
    return False


# 1. `make reference` is atomic and exclusive ------------------------------------------------------------------------
def test_reference_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    from tse_repro.experiments import main
    from tse_repro.runs import RunFolder, try_lock
    monkeypatch.chdir(tmp_path)
    sweep(tmp_path, acc=60.0)
    assert in_process(main, ["--profile", "p.yaml", "--promote"])[0] == 0
    old = digest(tmp_path / "results/p")
    assert {"report.md", "results.csv", "runs.csv", "report.ipynb"} <= set(old) and str(tmp_path) not in (tmp_path / "results/p/report.md").read_text()
    for run in ("baseline-s0", "tse-s0"):   # a new sweep to promote: other numbers
        summary = RunFolder(tmp_path / "runs/p/runs" / run).summary()
        RunFolder(tmp_path / "runs/p/runs" / run).write_summary({**summary, "final_acc": summary["final_acc"] + 7.0})
    staged = tmp_path / "results/.p.staging/results/p/.report.kernel.log"   # the new report is being built
    for how in (signal.SIGINT, signal.SIGKILL):   # Ctrl-C and kill -9 while the new reference's report is built
        proc = promote_command(tmp_path)
        assert wait_for(staged, proc), proc.communicate()
        os.killpg(proc.pid, how)
        _, err = proc.communicate(timeout=60)
        assert digest(tmp_path / "results/p") == old, how   # a staging folder may be left beside it, hidden; the next promotion removes it
        if how == signal.SIGINT:
            assert_one_line(proc.returncode, err.strip(), 130, "interrupted", "is as it was")
            assert not (tmp_path / "results/.p.staging").exists()
    lock = try_lock(tmp_path / "results/.p.lock")   # another `make reference` holds the reference
    try: assert_one_line(*in_process(main, ["--profile", "p.yaml", "--promote"]), 2, "another `make reference` or `make report` of p is running")
    finally: os.close(lock)
    assert digest(tmp_path / "results/p") == old
    assert in_process(main, ["--profile", "p.yaml", "--promote"])[0] == 0   # after the kill: a clean promotion
    new = digest(tmp_path / "results/p")
    assert new != old and set(new) == set(old) and not (tmp_path / "results/.p.staging").exists()
    assert RunFolder(tmp_path / "results/p/runs/tse-s0").summary() == RunFolder(tmp_path / "runs/p/runs/tse-s0").summary()


# 2. damaged runs are said to be damaged, set aside, and trained again ------------------------------------------------
@pytest.mark.parametrize("damage, words", [
    (lambda f: f.file("identity").write_text(f.file("identity").read_text()[:40]), "run.json is unreadable"),
    (lambda f: f.file("eval").write_text('{"top1": 5'), "eval.json is unreadable"),
    (lambda f: f.file("metrics").write_text(f.file("metrics").read_text().splitlines()[0] + "\n"), "summary.json says 2 epochs, metrics.jsonl holds 1"),
    (lambda f: f.file("metrics").write_text(f.file("metrics").read_text()[:-30]), "metrics.jsonl is unreadable"),
    (lambda f: f.file("config").write_text('{"arch": "resnet_t'), "config.json is unreadable"),
    (lambda f: f.file("summary").write_text('{"final_acc": 6'), "summary.json is unreadable"),
    (lambda f: f.path.joinpath("run.ipynb").write_text(json.dumps({"cells": [{"metadata": {"papermill": {"status": "completed"}}},
                                                                                 {"metadata": {"papermill": {"status": "pending"}}}]})),
     "its notebook stopped before the end (run.ipynb: 1 of 2 cells ran)")])
def test_damaged_run_trains_again(tmp_path, damage, words):
    from tse_repro.experiments import main
    from tse_repro.profiles import load_profile
    from tse_repro.sweep import run_profile
    from tse_repro.runs import RunFolder
    sweep(tmp_path)
    folder = RunFolder(tmp_path / "runs/p/runs/tse-s0")
    folder.file("eval").write_text("{}\n")
    damage(folder)
    listed = io.StringIO()
    with contextlib.redirect_stdout(listed): assert main(["--profile", str(tmp_path / "p.yaml"), "--work", str(tmp_path / "runs"), "--list"]) == 0
    assert "tse-s0" in listed.getvalue() and "damaged" in listed.getvalue(), listed.getvalue()
    said = []
    statuses = run_profile(load_profile(tmp_path / "p.yaml"), tmp_path / "runs", runner=made_up_runner(70.0), log=said.append)
    assert statuses == {"baseline-s0": "complete", "tse-s0": "complete"}
    assert any(f"tse-s0: damaged: {words}" in s and "it trains again" in s for s in said), said
    assert any("tse-s0: starting" in s for s in said) and any("baseline-s0: complete, skipped" in s for s in said), said
    stale = list((tmp_path / "runs/p/stale").iterdir())
    assert [p.name.split("-")[0] for p in stale] == ["tse"] and RunFolder(tmp_path / "runs/p/runs/tse-s0").summary()["final_acc"] > 60


def test_damaged_run_is_not_promoted(tmp_path):
    from tse_repro.reference import promote
    from tse_repro.runs import RunFolder
    sweep(tmp_path)
    RunFolder(tmp_path / "runs/p/runs/baseline-s0").file("summary").write_text("{")
    with pytest.raises(ValueError, match="baseline-s0 is damaged .summary.json is unreadable.*sets it aside and trains it again"):
        promote("p", tmp_path / "runs", tmp_path / "results", report=False, log=lambda m: None)
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").glob("p*"))


# 3. two sweeps of one profile: each run has one driver; nothing is written into a live run's folder ------------------
def test_two_sweeps_share_the_work(tmp_path):
    from tse_repro.profiles import load_profile
    from tse_repro.stale import driver_claim
    from tse_repro.sweep import run_profile
    from tse_repro.runs import RunFolder, RunRefused
    (tmp_path / "p.yaml").write_text(PROFILE)
    p, root = load_profile(tmp_path / "p.yaml"), tmp_path / "runs/p"
    trained = []
    def runner(run, run_dir, nproc, resume):
        trained.append(run.name); made_up_runner(60.0)(run, run_dir, nproc, resume)
    with driver_claim(root, "tse-s0") as mine:  # another sweep trains tse-s0 now
        assert mine
        said = []
        statuses = run_profile(p, tmp_path / "runs", runner=runner, log=said.append)
    assert trained == ["baseline-s0"] and statuses["tse-s0"] == "live" and not (root / "runs/tse-s0").exists(), said
    assert any("tse-s0: live (another sweep trains it), skipped" in s for s in said), said
    live = RunFolder(root / "runs/tse-s0")
    def refused(run, run_dir, nproc, resume): raise RunRefused(f"{run_dir} is owned by a live run")
    with live.claim():   # a trainer started by hand took the folder between the driver's look and its kernel's start
        before = snapshot(live.path)
        statuses = run_profile(p, tmp_path / "runs", runner=refused, log=lambda m: None)
        assert statuses["tse-s0"] == "live" and not live.file("error").exists()
        assert {k for k in snapshot(live.path)} - {k for k in before} <= {"run.json"}


# 4. a full disk under `make reproduce`: one line, exit 1, nothing half-written ---------------------------------------
def test_full_disk_under_reproduce(tmp_path):
    (tmp_path / "tiny.yaml").write_text("recipe: {arch: resnet_tiny, width: 0.25, dataset: digits, train_per_class: 12, test_per_class: 6, "
                                        "T: 2, epochs: 1, batch_size: 40}\nmethods: {b: {method: sdt}}\n")
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # files over 20 kB cannot be written: a full disk
    r = subprocess.run([sys.executable, "-m", "tse_repro.experiments", "--profile", "tiny.yaml"], cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=limit, timeout=300)
    assert_one_line(r.returncode, r.stderr.strip(), 1, "File too large", "free space", "rerun the same command")
    assert "Traceback" not in r.stdout + r.stderr and "JSONDecodeError" not in r.stdout + r.stderr, r.stdout[-2000:]
    r = subprocess.run([sys.executable, "-m", "tse_repro.experiments", "--profile", "tiny.yaml", "--list"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and "b-s0" in r.stdout, r.stdout + r.stderr


# 5. messages that named the wrong fix, or none ------------------------------------------------------------------------
@pytest.mark.parametrize("args, status, words", [
    (["--set", "epochs=[1"], 2, "--set epochs=[1: '[1' is not a YAML value"),
    (["--set", "epochs=1e12"], 2, "recipe.epochs must be a whole number >= 1, got 1000000000000.0; write it without a decimal point or exponent"),
    (["--data-path", "{d}/p.yaml"], 2, "--data-path {d}/p.yaml is a file; name the folder that holds the data files"),
    (["--data-path", "{d}/nowhere"], 2, "--data-path {d}/nowhere does not exist"),
    (["--report"], 2, "holds no reference to report: make one with `make reproduce PROFILE=p`, then `make reference PROFILE=p`")])
def test_driver_messages(tmp_path, args, status, words):
    from tse_repro.experiments import main
    (tmp_path / "p.yaml").write_text(PROFILE)
    before = snapshot(tmp_path)
    code, err = in_process(main, ["--profile", str(tmp_path / "p.yaml"), "--work", str(tmp_path / "runs"), "--reference", str(tmp_path / "results"),
                                  *[a.format(d=tmp_path) for a in args]])
    assert_one_line(code, err, status, words.format(d=tmp_path))
    assert snapshot(tmp_path) == before


def test_yaml_numbers_without_a_dot(tmp_path):
    from tse_repro.profiles import load_profile, override
    (tmp_path / "p.yaml").write_text(PROFILE.replace("epochs: 2,", "epochs: 2, lr: 1e-3, weight_decay: 5E-4,"))
    p = load_profile(tmp_path / "p.yaml")
    assert p.recipe["lr"] == 0.001 and p.recipe["weight_decay"] == 0.0005
    assert override(p, ["lr=3e-3"]).recipe["lr"] == 0.003


@pytest.mark.parametrize("evaluation, words", [
    ("{overlap: {imagez_per_class: 3}}", "profile p: evaluation.overlap.imagez_per_class is not a setting of the overlap evaluation; use images_per_class"),
    ("{robustness: {fgsm_eps: [bad]}}", "evaluation.robustness.fgsm_eps"), ("{robustness: {pgd_steps: 0}}", "evaluation.robustness.pgd_steps"),
    ("{robustnes: {}}", "evaluation.robustnes is not an evaluation")])
def test_evaluation_settings_refused_before_training(tmp_path, evaluation, words):
    from tse_repro.experiments import main
    (tmp_path / "p.yaml").write_text(PROFILE + f"evaluation: {evaluation}\n")
    before = snapshot(tmp_path)
    code, err = in_process(main, ["--profile", str(tmp_path / "p.yaml"), "--work", str(tmp_path / "runs"), "--reference", str(tmp_path / "results")])
    assert_one_line(code, err, 2, words)
    assert snapshot(tmp_path) == before


# 6. `make extend` twice at once, and a reference that lost its report ------------------------------------------------
def test_extend_waits_for_another_banking_and_rebuilds_a_lost_report(tmp_path):
    import threading
    from tse_repro.profiles import load_profile
    from tse_repro.reference import extend_reference
    from tse_repro.runs import try_lock
    (tmp_path / "p.yaml").write_text(PROFILE)
    p, ref, said = load_profile(tmp_path / "p.yaml"), tmp_path / "results", []
    ref.mkdir()
    held = try_lock(ref / ".p.lock")  # another sweep is banking into the reference now
    threading.Timer(2.0, os.close, (held,)).start()
    start = time.perf_counter()
    statuses = extend_reference(p, tmp_path / "runs", ref, runner=made_up_runner(60.0), report=False, log=said.append)
    assert time.perf_counter() - start >= 2.0 and set(statuses.values()) == {"complete"}, said  # it waited its turn
    assert sorted(q.name for q in (ref / "p/runs").iterdir()) == ["baseline-s0", "tse-s0"] and not (ref / "p/report.md").exists()
    extend_reference(p, tmp_path / "runs", ref, runner=made_up_runner(60.0), log=said.append)  # nothing to train
    assert (ref / "p/report.md").exists() and (ref / "p/runs.csv").exists()
    assert any("lacked its report.md or runs.csv: rebuilt from its runs" in s for s in said), said
