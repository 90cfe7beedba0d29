"""Bad input, round 3: resources and settings that ran out of range at run time, the dry run, evaluation.

A full disk, memory running out, a seed or size that overflows, a dry run that passes what the run refuses, a data
path that names a file, evaluation settings nobody checked, and tse-eval on a diverged, read-only or live run: each
gets one line naming the fix, the right exit status, and every file that existed before is kept."""
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_20_bad_input import BIN, TINY, assert_one_line, in_process, snapshot, train_main  # noqa: E402

RUN = [*TINY, "--epochs", "2"]


def eval_main(argv):
    from tse_repro.eval import main
    return in_process(main, argv)


def limited(argv, limit, amount):
    "Exit status and stderr of a command run in a child process under the resource limit `limit` of `amount` bytes."
    def preexec(): resource.setrlimit(limit, (amount, resource.getrlimit(limit)[1]))
    r = subprocess.run(argv, capture_output=True, text=True, preexec_fn=preexec, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    return r.returncode, r.stderr.strip()


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    "A run of two epochs stopped (Ctrl-C) in its second: config, metrics and the checkpoint of epoch 1, no summary."
    import tse_repro.train
    out = tmp_path_factory.mktemp("interrupted") / "run"
    real, calls = tse_repro.train.train_one_epoch, []
    def stop_in_epoch_2(*args, **kw):
        calls.append(1)
        if len(calls) == 2: raise KeyboardInterrupt
        return real(*args, **kw)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tse_repro.train, "train_one_epoch", stop_in_epoch_2)
        code, err = train_main([*RUN, "--out", str(out)])
    assert code == 130 and (out / "checkpoint.pt").exists() and not (out / "summary.json").exists(), err
    return out


@pytest.fixture
def run_copy(interrupted):
    "A copy of the interrupted run in a folder any user may enter (the read-only test drops root; pytest's are root's only)."
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        yield Path(shutil.copytree(interrupted, Path(d, "run")))


# 1. a full disk: one line naming the file and the fix; the last checkpoint is intact --------------------------------
def test_full_disk_keeps_the_last_checkpoint(run_copy):
    import torch
    before = snapshot(run_copy)
    # Python ignores SIGXFSZ, so a write past RLIMIT_FSIZE fails with EFBIG, as one on a full disk fails with ENOSPC
    code, err = limited([BIN / "tse-train", *RUN, "--out", str(run_copy), "--resume"], resource.RLIMIT_FSIZE, 60_000)
    assert_one_line(code, err, 1, f"cannot write {run_copy / 'checkpoint.pt'} (File too large)", "--resume",
                    "its last checkpoint is intact")
    after = snapshot(run_copy)
    assert after["checkpoint.pt"] == before["checkpoint.pt"] and not [k for k in after if ".tmp" in k], after
    assert torch.load(run_copy / "checkpoint.pt", weights_only=False)["epoch"] == 0


# 2. out of memory: one line naming what to lower; no folder left behind -------------------------------------------------
@pytest.mark.parametrize("flags", [["--T", "100000"], ["--width", "500"]])
def test_out_of_memory(tmp_path, flags):
    # 8 GB of address space lets torch import (it maps ~5 GB) and refuses the run's tensors
    code, err = limited([BIN / "tse-train", *RUN, "--out", str(tmp_path / "new/run"), *flags], resource.RLIMIT_AS, 8 << 30)
    assert_one_line(code, err, 1, "out of memory", "lower --batch-size (20), --T", "--width")
    assert list(tmp_path.iterdir()) == []


# 3. a seed or size beyond what the RNGs and tensors take: the range, before anything runs -------------------------------
@pytest.mark.parametrize("flags, words", [
    (["--seed", "99999999999999999999"], "--seed must be a whole number in [0, 4294967295] (32-bit, as numpy's seeds)"),
    (["--seed", "184467440737095"], "--seed must be"),  # torch took it; the epoch seeds derived from it did not
    (["--T", str(10**20)], "--T must be <= 1048576 (a ceiling far above any real run)"), (["--batch-size", str(10**20)], "--batch-size"),
    (["--width", "1e30"], "--width must be <= 1024"), (["--workers", "1000000", "--dry-run"], "--workers")])  # a dry run: were the bound lost, a run would fork without end
def test_overflowing_settings(tmp_path, flags, words):
    assert_one_line(*train_main([*RUN, "--out", str(tmp_path / "run"), *flags]), 2, words)
    assert list(tmp_path.iterdir()) == []


def test_plausible_extremes_pass():
    from tse_repro.config import TrainConfig
    TrainConfig(seed=2**32 - 1, T=4096, batch_size=65536, width=16.0, workers=64, epochs=10**6, save_every=10**6).validate()


# 4. the dry run refuses what the run refuses, in the same words ---------------------------------------------------------
@pytest.mark.parametrize("flags", [["--dataset", "nmnist", "--download"], ["--dataset", "dvs-cifar10", "--download"],
                                   ["--dataset", "cifar10", "--download", "--train-file", "cifar10_train_20k.npz"]])
def test_dry_run_refuses_what_the_run_refuses(tmp_path, flags):
    (tmp_path / "empty").mkdir()
    argv = [*RUN, "--data-path", str(tmp_path / "empty"), "--out", str(tmp_path / "run"), *flags]
    dry, run = train_main([*argv, "--dry-run"]), train_main(argv)
    assert_one_line(*dry, 2, str(tmp_path / "empty"))
    assert dry == run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"] and not list((tmp_path / "empty").iterdir())


def test_dry_run_plans_a_download(tmp_path):
    code, err = train_main([*RUN, "--dataset", "cifar10", "--download", "--data-path", str(tmp_path / "data"), "--out",
                            str(tmp_path / "run"), "--dry-run"])
    assert (code, err) == (0, "") and list(tmp_path.iterdir()) == []


# 5. a data path that names a file ---------------------------------------------------------------------------------------
def test_data_path_names_a_file(tmp_path, interrupted):
    (tmp_path / "cifar10_train.npz").write_bytes(b"x")
    data = str(tmp_path / "cifar10_train.npz")
    before = snapshot(tmp_path)
    for code_err in (train_main([*RUN, "--data-path", data, "--out", str(tmp_path / "run")]),
                     train_main([*RUN, "--data-path", data, "--out", str(tmp_path / "run"), "--dry-run"]),
                     eval_main([str(interrupted), "--data-path", data, "--write"])):
        assert_one_line(*code_err, 2, f"--data-path {data} is a file; name the folder that holds the data")
    assert snapshot(tmp_path) == before and not (interrupted / "eval.json").exists()


# 6. evaluation settings are checked, before anything is evaluated -------------------------------------------------------
@pytest.mark.parametrize("evaluation, field, words", [
    ({"overlap": {"imagez_per_class": 3}}, "evaluation.overlap.imagez_per_class", "is not a setting of the overlap evaluation; use images_per_class"),
    ({"robustness": {"fgsm_eps": ["bad"]}}, "evaluation.robustness.fgsm_eps", "must be a non-empty list of numbers in (0, 255]"),
    ({"robustness": {"pgd_eps": [float("inf")]}}, "evaluation.robustness.pgd_eps", "got [inf]"),
    ({"robustness": {"pgd_steps": 0}}, "evaluation.robustness.pgd_steps", "must be a whole number >= 1"),
    ({"robustness": {"noise_sigma": [0]}}, "evaluation.robustness.noise_sigma", "numbers > 0"),
    ({"robustness": {"seed": 2**40}}, "evaluation.robustness.seed", "in [0, 4294967295]"),
    ({"overlap": {"images_per_class": 1.5}}, "evaluation.overlap.images_per_class", "got 1.5"),
    ({"robustnesss": {}}, "evaluation.robustnesss", "is not an evaluation; use robustness")])
def test_evaluation_settings(run_copy, evaluation, field, words):
    from tse_repro.checks import SettingError
    from tse_repro.config import check_evaluation
    from tse_repro.eval import analyze_run
    with pytest.raises(SettingError) as e: check_evaluation(evaluation)
    assert e.value.field == field and words in e.value.problem
    assert e.value.named(f"profile demo: {e.value.field}").startswith(f"profile demo: {field} ")
    before = snapshot(run_copy)
    with pytest.raises(SettingError, match=words.replace("(", r"\(").replace("[", r"\[")): analyze_run(run_copy, evaluation)
    assert snapshot(run_copy) == before


def test_evaluation_defaults_pass():
    from tse_repro.config import EVALUATION_DEFAULTS, check_evaluation
    from tse_repro.eval import OVERLAP_DEFAULTS
    from tse_repro.robustness import ROBUSTNESS_DEFAULTS
    for profile in Path(__file__).parents[1].glob("profiles/*.yaml"):
        import yaml
        check_evaluation(yaml.safe_load(profile.read_text()).get("evaluation"))
    assert check_evaluation(EVALUATION_DEFAULTS) is EVALUATION_DEFAULTS
    assert (ROBUSTNESS_DEFAULTS, OVERLAP_DEFAULTS) == (EVALUATION_DEFAULTS["robustness"], EVALUATION_DEFAULTS["overlap"])


# 7. tse-eval: a diverged run, a folder it cannot write, a run still training ----------------------------------------------
def test_eval_refuses_a_diverged_checkpoint(run_copy):
    import torch
    state = torch.load(run_copy / "checkpoint.pt", weights_only=False)
    state["model"] = {k: v.fill_(float("nan")) if v.is_floating_point() else v for k, v in state["model"].items()}
    torch.save(state, run_copy / "checkpoint.pt")
    before = snapshot(run_copy)
    for argv in ([str(run_copy)], [str(run_copy / "checkpoint.pt")], [str(run_copy), "--write"]):
        assert_one_line(*eval_main(argv), 2, "checkpoint.pt holds non-finite weights (", "its run diverged")
    assert snapshot(run_copy) == before


@contextlib.contextmanager
def unprivileged():
    "The block as user nobody when run as root (root writes into read-only folders); the effective uid only, so it comes back."
    if os.geteuid() != 0: yield; return
    os.seteuid(65534)
    try: yield
    finally: os.seteuid(0)


def test_eval_write_into_a_read_only_folder(run_copy):
    before = snapshot(run_copy)
    os.chmod(run_copy, 0o555)
    try:
        with unprivileged(): code, err = eval_main([str(run_copy), "--write"])
    finally: os.chmod(run_copy, 0o755)
    assert_one_line(code, err, 2, f"{run_copy} is read-only; make it writable or drop --write")
    assert snapshot(run_copy) == before


def test_eval_of_a_live_and_an_interrupted_run(run_copy):
    from tse_repro.runs import RunFolder
    with RunFolder(run_copy).claim():  # held as the live run's trainer holds it
        before = snapshot(run_copy)
        assert_one_line(*eval_main([str(run_copy), "--write"]), 2, f"{run_copy} is still training; wait for it to finish or drop --write")
        assert_one_line(*eval_main([str(run_copy)]), 0, "note: evaluating the checkpoint of epoch 1 of 2 of a run still training")
        assert snapshot(run_copy) == before
    assert_one_line(*eval_main([str(run_copy)]), 0, "checkpoint of epoch 1 of 2 of an interrupted run (no summary.json)")
    code, err = eval_main([str(run_copy), "--write"])
    assert code == 0 and json.loads((run_copy / "eval.json").read_text())["top1_by_t"], err
