"""Bad input is never silently wrong, never costs a run, and always gets one line.

One test per class of bad input: settings (flag, YAML key, papermill parameter, direct call), data that is not
what its dataset should be, a run folder's one owner, corrupt state, Ctrl-C, the run notebook's parameters and the
sweep driver's own input. Every case checks the exit status, that the message is one line naming the fix, and
that every file that existed before is unchanged, byte for byte."""
import contextlib
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

BIN = Path(sys.executable).parent
TINY = ["--arch", "resnet_tiny", "--width", "0.25", "--dataset", "digits", "--train-per-class", "4", "--test-per-class", "2",
        "--T", "2", "--batch-size", "20", "--no-progress"]


def snapshot(folder: Path) -> dict:
    "Every file under `folder` (dotfiles included) by its bytes, and every folder."
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
            for p in sorted(folder.rglob("*"))}


def in_process(main, argv) -> tuple[int, str]:
    "Exit status and stderr of a command-line `main(argv)` run in this process."
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try: code = main(argv) or 0
        except SystemExit as e: code = e.code
    return code, err.getvalue().strip()


def assert_one_line(code, err, status, *words):
    assert code == status, (code, err)
    assert len(err.splitlines()) == 1, err
    for w in words: assert w in err, (w, err)


def train_main(argv):
    from tse_repro.train import main
    return in_process(main, argv)


def process(args, env=None, **kw):
    return subprocess.run(args, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, timeout=600, **kw)


# 1. every numeric setting: type, finiteness, range, named as the user wrote it -------------------------------------
@pytest.mark.parametrize("flags, words", [
    (["--tse", "--kappa", "inf"], "--kappa must be a number >= 0"), (["--tet", "--means", "nan"], "--means must be a number"),
    (["--weight-decay", "inf"], "--weight-decay"), (["--width", "inf"], "--width"), (["--momentum", "-1"], "--momentum"),
    (["--lr", "0"], "--lr must be a number > 0"), (["--lr", "-inf"], "--lr"), (["--tse", "--tau-f", "1.0000001"], "--tau-f"),
    (["--tet", "--lamb", "1.5"], "--lamb must be a number in [0, 1]"), (["--T", "0"], "--T must be a whole number >= 1"),
    (["--epochs", "2.5"], "invalid int value: '2.5'"), (["--batch-size", "0"], "--batch-size"), (["--seed", "-3"], "--seed"),
    (["--save-every", "0"], "--save-every"), (["--train-per-class", "0"], "--train-per-class"),
    (["--warmup-epochs", "2", "--epochs", "2"], "--warmup-epochs must be fewer"), (["--tet", "--tse"], "mutually exclusive"),
    (["--method", "tse", "--no-tse"], "contradicts"), (["--arch", "vggsnn", "--tse"], "use vggsnn_gap"),
    (["--tse", "--tau-f-schedule", "linear", "--tau-f-epochs", "5", "--epochs", "3"], "--tau-f-epochs must be at most the epochs (3)"),
    (["--tse", "--tau-f-schedule", "cosine", "--tau-f-epochs", "1"], "--tau-f-epochs of 1 reaches tau_f in the first epoch"),
    (["--tse", "--learn-kappa", "--mask-temperature", "0.05", "--kappa", "1e-300"], "--kappa 1e-300 is too close to 0 or to kappa_max"),
    (["--tse", "--tet-mix", "0.3"], "--tet-mix has no effect with method tse: drop it, or add --method tse_tet"),
    (["--tse", "--tau-f-start", "0.9"], "--tau-f-start has no effect while --tau-f-schedule is constant: drop it, or set --tau-f-schedule"),
    (["--tse", "--kappa-max", "2"], "--kappa-max has no effect while --learn-kappa is False: drop it, or set --learn-kappa")])
def test_settings_cli(tmp_path, flags, words):
    code, err = train_main([*TINY, "--out", str(tmp_path / "run"), *flags])
    assert_one_line(code, err, 2, words)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("body, words", [
    ("recipe: {epochs: 1.5}\nmethods: {b: {method: sdt}}", "recipe.epochs must be a whole number >= 1, got 1.5"),
    ("recipe: {lr: .nan}\nmethods: {b: {method: sdt}}", "recipe.lr must be a number > 0, got nan"),
    ("methods: {t: {method: tse, kappa: .inf}}", "methods.t.kappa must be a number >= 0"),
    ("methods: {t: {method: tet, lamb: -0.1}}", "methods.t.lamb"), ("methods: {t: {method: tse, tau_f: '0.5'}}", "methods.t.tau_f"),
    ("sweep: {tau_f: [0.5, 2.0], kappa: [1.0]}", "sweep.tau_f must be a number in (0, 1]"),
    ("recipe: {width: 0}\nmethods: {b: {method: sdt}}", "recipe.width"), ("recipe: {amp: 1}\nmethods: {b: {method: sdt}}", "recipe.amp must be true or false"),
    ("methods: {b: {method: sdt}}\nseeds: [0, 1.5]", "seeds must be"), ("methods: {b: {method: sdt, tau_f: 0.3}}", "only tse and tse_tet use"),
    ("methods: {b: {method: sdt}}\nseeds: [0]\nseeds: [1]", "'seeds' is given twice; keep one"),
    ("methods:\n  b: {method: sdt}\n  b: {method: tet}", "line 3, column 3: 'b' is given twice; keep one")])
def test_settings_profile_yaml(tmp_path, body, words):
    from tse_repro.experiments import main
    (tmp_path / "p.yaml").write_text(body + "\n")
    code, err = in_process(main, ["--profile", str(tmp_path / "p.yaml"), "--work", str(tmp_path / "runs")])
    assert_one_line(code, err, 2, words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]


def test_settings_direct_calls():
    import torch
    from tse_repro.losses import erase_mask, tse_loss
    q, feats, head = torch.rand(2, 16), torch.randn(2, 3, 4, 2, 2), torch.nn.Linear(4, 3)
    for tau_f, kappa, words in [(1.5, 1.0, "tau_f"), (float("nan"), 1.0, "tau_f"), (0.5, float("inf"), "kappa"), (0.5, -1.0, "kappa")]:
        with pytest.raises(ValueError, match=words): erase_mask(q, tau_f, kappa)
        with pytest.raises(ValueError, match=words): tse_loss(feats, head, torch.tensor([0, 1]), tau_f, kappa)


# 2. data is checked against the dataset it claims to be ------------------------------------------------------------
def write_cifar(folder: Path, size=32, classes=10, n=50, label_shift=0, test=True, **replace):
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test") if test else ("train",):
        x = np.zeros((n, size, size, 3), np.uint8)
        y = (np.arange(n) % classes) + label_shift
        np.savez(folder / f"cifar10_{split}.npz", **{"x": x, "y": y, **replace.get(split, {})})


@pytest.mark.parametrize("make, words", [
    (lambda d: write_cifar(d, size=16), "expected uint8 [N,32,32,3]"),
    (lambda d: write_cifar(d, label_shift=5), "labels span 5..14, outside 0..9"),
    (lambda d: write_cifar(d, classes=4), "labels of 4 classes, expected all 10"),
    (lambda d: write_cifar(d, n=0), "holds no images"),
    (lambda d: (write_cifar(d), (d / "cifar10_test.npz").write_bytes((d / "cifar10_test.npz").read_bytes()[:300])), "cifar10_test.npz is corrupt"),
    (lambda d: (d.mkdir(), (d / "cifar10_train.npz").write_bytes(b"")), "cifar10_train.npz is corrupt"),
    (lambda d: write_cifar(d, test=False), "no full cifar10 test split in"),
    (lambda d: d.mkdir(), "no full cifar10 train split in"),
    (lambda d: None, "no full cifar10 train split in")])
def test_data_cifar(tmp_path, make, words):
    data = tmp_path / "data"
    make(data)
    before = snapshot(tmp_path)
    code, err = train_main([*TINY, "--dataset", "cifar10", "--data-path", str(data), "--out", str(tmp_path / "run")])
    assert_one_line(code, err, 2, words, str(data))
    assert snapshot(tmp_path) == before and not (tmp_path / "run").exists()


def test_training_on_the_test_set_is_refused(tmp_path):
    "The test file named as the training file, or a copy of it under another name: one line, nothing written."
    from tse_repro.fixtures import write_synthetic
    write_synthetic("cifar10", tmp_path / "data")
    (tmp_path / "data" / "mine.npz").write_bytes((tmp_path / "data" / "cifar10_test.npz").read_bytes())
    before = snapshot(tmp_path)
    for name in ("cifar10_test.npz", "mine.npz"):
        code, err = train_main([*TINY, "--dataset", "cifar10", "--data-path", str(tmp_path / "data"), "--train-file", name,
                                "--out", str(tmp_path / "run")])
        assert_one_line(code, err, 2, "holds the test split's very images", name)
    assert snapshot(tmp_path) == before


def test_data_nmnist(tmp_path):
    (tmp_path / "nmnist_small_events.npz").write_bytes(b"PK\x03\x04 not really")
    code, err = train_main([*TINY, "--dataset", "nmnist", "--data-path", str(tmp_path), "--out", str(tmp_path / "run")])
    assert_one_line(code, err, 2, "nmnist_small_events.npz is corrupt or not an N-MNIST event file")
    code, err = train_main([*TINY, "--dataset", "dvs-cifar10", "--data-path", str(tmp_path), "--out", str(tmp_path / "run")])
    assert_one_line(code, err, 2, "no DVS-CIFAR10 data in")
    assert not (tmp_path / "run").exists()


# 3. a run folder has one owner; a refused start leaves nothing behind -------------------------------------------------
def test_one_owner(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen([BIN / "tse-train", *TINY, "--train-per-class", "40", "--epochs", "200", "--out", str(out)],
                             env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            if (out / "metrics.jsonl").exists(): break
            time.sleep(0.1)
        assert (out / "config.json").exists(), first.stderr.read() if first.poll() is not None else "no run started"
        before = snapshot(out)
        for flags in ([], ["--resume"], ["--lr", "0.5"], ["--resume", "--lr", "0.5"]):
            code, err = train_main([*TINY, "--train-per-class", "40", "--epochs", "200", "--out", str(out), *flags])
            assert_one_line(code, err, 2, "owned by a live run")
        from tse_repro.runs import RunFolder
        assert RunFolder(out).status() == "live"
        lasting = lambda snap: {k for k in snap if ".tmp" not in k}   # a write in flight comes and goes
        assert lasting(before) <= lasting(snapshot(out))  # the live run went on writing; nothing of the refused ones did
    finally:
        first.kill(); first.wait()


@pytest.mark.parametrize("setup, out, flags, words", [
    (lambda d: (d / "run").mkdir() or (d / "run" / "metrics.jsonl").write_text("{}\n"), "run", [], "holds run files (metrics.jsonl) but no config.json"),
    (lambda d: (d / "run").mkdir() or (d / "run" / "checkpoint.pt").write_bytes(b"x"), "run", ["--resume"], "but no config.json"),
    (lambda d: (d / "file").write_text("x"), "file", [], "is a file"),
    (lambda d: (d / "file").write_text("x"), "file/run", [], "is a file, not a folder"),
    (lambda d: None, "", [], "--out must name a folder"),
    (lambda d: None, "run", ["--resume"], "holds no run to resume; drop --resume"),
    (lambda d: None, "run", ["--arch", "vggsnn", "--tse"], "use vggsnn_gap"),
    (lambda d: None, "run", ["--dataset", "cifar10", "--data-path", "{d}/nowhere"], "no full cifar10 train split")])
def test_folder_refusals_leave_everything_as_it_was(tmp_path, setup, out, flags, words):
    setup(tmp_path)
    before = snapshot(tmp_path)
    code, err = train_main([*TINY, "--out", str(tmp_path / out) if out else "", *[f.format(d=tmp_path) for f in flags]])
    assert_one_line(code, err, 2, words)
    assert snapshot(tmp_path) == before


def test_another_runs_folder_and_restart_cleanup(tmp_path):
    out = tmp_path / "run"
    assert train_main([*TINY, "--epochs", "1", "--out", str(out)])[0] == 0
    before = snapshot(out)
    for flags, words in [([], "already holds this run; pass --resume"), (["--lr", "0.01"], "holds another run (differs in lr)"),
                         (["--resume", "--T", "3"], "differs in T")]:
        assert_one_line(*train_main([*TINY, "--epochs", "1", "--out", str(out), *flags]), 2, words)
        assert snapshot(out) == before
    (out / ".checkpoint.pt.tmp4242").write_bytes(b"half a checkpoint")      # as a write killed midway leaves it
    assert train_main([*TINY, "--epochs", "1", "--out", str(out), "--resume"])[0] == 0
    assert not (out / ".checkpoint.pt.tmp4242").exists()


# 4. corrupt state gets one line and the good state is kept --------------------------------------------------------
def test_corrupt_state(tmp_path):
    out = tmp_path / "run"
    assert train_main([*TINY, "--epochs", "1", "--out", str(out)])[0] == 0
    (out / "summary.json").unlink()
    for junk in (b"", b"PK\x03\x04 truncated", b"\x80garbage"):
        (out / "checkpoint.pt").write_bytes(junk)
        before = snapshot(out)
        assert_one_line(*train_main([*TINY, "--epochs", "1", "--out", str(out), "--resume"]), 2, "checkpoint.pt is unreadable", "move it away")
        assert snapshot(out) == before
    (out / "config.json").write_text('{"arch": "resnet_t')
    before = snapshot(out)
    assert_one_line(*train_main([*TINY, "--epochs", "1", "--out", str(out), "--resume"]), 2, "config.json is unreadable")
    assert_one_line(*train_main([*TINY, "--epochs", "1", "--out", str(out)]), 2, "config.json is unreadable")
    assert snapshot(out) == before


def test_nonfinite_training_keeps_a_finite_checkpoint(tmp_path):
    import torch
    out = tmp_path / "run"
    code, err = train_main([*TINY, "--epochs", "3", "--lr", "1e30", "--out", str(out)])
    assert_one_line(code, err, 1, "became", "last good checkpoint is kept")
    if (out / "checkpoint.pt").exists():
        state = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert not (out / "summary.json").exists()


# 5. Ctrl-C or SIGTERM (kill, a scheduler's limit): one line, how to resume, a good checkpoint --------------------------
STOPS = [(signal.SIGINT, 130, "interrupted;"), (signal.SIGTERM, 143, "interrupted by SIGTERM;")]


@pytest.mark.parametrize("how, status, word", STOPS, ids=["ctrl-c", "sigterm"])
def test_ctrl_c(tmp_path, how, status, word):
    out = tmp_path / "run"
    args = [BIN / "tse-train", *TINY, "--train-per-class", "40", "--epochs", "200", "--out", str(out)]
    proc = subprocess.Popen(args, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(600):
        if (out / "checkpoint.pt").exists(): break
        time.sleep(0.1)
    proc.send_signal(how)
    _, err = proc.communicate(timeout=120)
    assert_one_line(proc.returncode, err.strip(), status, word, "--resume", str(out))
    from tse_repro.runs import RunFolder
    assert RunFolder(out).status() == "interrupted" and RunFolder(out).load_checkpoint()["epoch"] >= 0
    resumed = subprocess.Popen([*args, "--resume"], env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, text=True)
    try: assert any("resumed from epoch" in line for line, _ in zip(resumed.stdout, range(3)))  # the command it named works
    finally: resumed.kill(); resumed.wait()


def long_sweep(tmp_path, variants=("b",), **popen) -> subprocess.Popen:
    "A sweep of 200-epoch runs started in `tmp_path`; it returns once the first run has written a checkpoint."
    methods = ", ".join(f"{v}: {{method: sdt}}" for v in variants)
    (tmp_path / "long.yaml").write_text("recipe: {arch: resnet_tiny, width: 0.25, dataset: digits, train_per_class: 40, "
                                        f"test_per_class: 2, T: 2, epochs: 200, batch_size: 40}}\nmethods: {{{methods}}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "tse_repro.experiments", "--profile", "long.yaml"], cwd=tmp_path, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
    for _ in range(900):
        if (tmp_path / f"runs/long/runs/{variants[0]}-s0/checkpoint.pt").exists(): break
        time.sleep(0.1)
    return proc


def ignore_sigint():
    "What a shell does to a job it starts in the background (`nohup make extend &` in a script): Ctrl-C is ignored."
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("how, status, word", STOPS, ids=["ctrl-c", "sigterm"])
def test_ctrl_c_sweep(tmp_path, how, status, word):
    background = how == signal.SIGTERM  # `kill <pid>` is how a background sweep, deaf to SIGINT, is stopped
    proc = long_sweep(tmp_path, preexec_fn=ignore_sigint if background else None)
    proc.send_signal(how)
    out, err = proc.communicate(timeout=120)
    assert_one_line(proc.returncode, err.strip(), status, word, "rerun the same command")
    from tse_repro.runs import RunFolder
    folder = RunFolder(tmp_path / "runs/long/runs/b-s0")
    assert folder.status() == "interrupted" and not folder.error() and folder.load_checkpoint()["epoch"] >= 0


def children(pid: int) -> list[tuple[int, str]]:
    "The child processes of `pid`: (pid, command line), from /proc."
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append((int(stat.parent.name), (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
    return found


def test_sweep_kernel_killed(tmp_path):
    "A run whose kernel is killed under it (kill -9, the out-of-memory killer) fails in one line naming the signal; the sweep goes on."
    proc = long_sweep(tmp_path, variants=("b", "c"))
    try:
        kernel = next(pid for pid, cmd in children(proc.pid) if "ipykernel_launcher" in cmd)
        os.kill(kernel, signal.SIGKILL)
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "c-s0: starting" in line: break
    finally:
        proc.send_signal(signal.SIGTERM); proc.communicate(timeout=120)
    failed = next(line for line in lines if "FAILED" in line)
    assert "KernelDied: the run's kernel was killed by SIGKILL" in failed and "runs/long/runs/b-s0/error.txt" in failed, lines
    from tse_repro.runs import RunFolder
    folder = RunFolder(tmp_path / "runs/long/runs/b-s0")
    assert folder.status() == "failed" and folder.error().startswith("KernelDied: the run's kernel was killed by SIGKILL")
    assert folder.load_checkpoint()["epoch"] >= 0  # the next sweep resumes it


# 6. the run notebook refuses a parameter it does not know, and a bad value --------------------------------------------
def test_run_notebook_parameters(tmp_path):
    for params, words in [(["-p", "tau_ff", "0.3"], "unknown parameter(s) tau_ff"),
                          (["-p", "epochs", "1.5"], "parameter 'epochs' must be a whole number")]:
        r = process([BIN / "papermill", "nbs/papermill/run.ipynb", str(tmp_path / "out.ipynb"), *params], cwd=Path(__file__).parents[1])
        assert r.returncode != 0 and words in r.stdout + r.stderr, r.stderr[-1500:]
    assert not list(tmp_path.glob("tse-run-*"))


def test_papermill_command_says_the_notebooks_error_in_one_line(tmp_path):
    "The README's papermill command: a bad parameter is the run notebook's own line, exit 2; a missing folder is refused first."
    root = Path(__file__).parents[1]
    for params, words in [(["-p", "method", "bogus"], "ValueError: parameter 'method' must be one of"),
                          (["-p", "tau_f", "2"], "parameter 'tau_f' must be a number in (0, 1]"),
                          (["-y", "config: {epochs: -1}"], "config key 'epochs' must be a whole number >= 1, got -1")]:
        r = process([sys.executable, "-m", "tse_repro.experiments", "papermill", "nbs/papermill/run.ipynb",
                     str(tmp_path / "out.ipynb"), *params], cwd=root)
        last = r.stderr.strip().splitlines()[-1]
        assert r.returncode == 2 and "Traceback" not in r.stderr and last.startswith("papermill: error in cell"), r.stderr[-1500:]
        assert words in last, last
    r = process([sys.executable, "-m", "tse_repro.experiments", "papermill", "nbs/papermill/run.ipynb",
                 str(tmp_path / "nowhere/out.ipynb")], cwd=root)
    assert_one_line(r.returncode, r.stderr.strip(), 2, f"{tmp_path}/nowhere does not exist; create it first")
    assert not (tmp_path / "nowhere").exists()


def test_ctrl_c_while_a_profile_expands(monkeypatch, tmp_path):
    import tse_repro.experiments as experiments
    def interrupted(profile): raise KeyboardInterrupt
    monkeypatch.setattr(experiments, "expand", interrupted)
    code, err = in_process(experiments.main, ["--profile", "demo", "--work", str(tmp_path / "runs")])
    assert_one_line(code, err, 130, "reproduce: interrupted before any run started; nothing was written")
    assert not (tmp_path / "runs").exists()


# 7. the sweep driver's own input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, words", [
    (["--only", "tse["], "--only 'tse[' is not a regular expression"), (["--only", "^resnet"], "matches none of the runs"),
    (["--nproc", "0"], "--nproc must be >= 1"), (["--profile", "nope"], "unknown profile 'nope'"),
    (["--profile", "{d}/broken.yaml"], "not valid YAML (line 2, column"), (["--promote", "--work", "{d}/empty"], "holds no sweep")])
def test_sweep_driver_input(tmp_path, args, words):
    from tse_repro.experiments import main
    (tmp_path / "broken.yaml").write_text("recipe: {epochs: 1\nmethods: {b: {method: sdt}}\n")
    before = snapshot(tmp_path)
    code, err = in_process(main, [a.format(d=tmp_path) for a in args] + ["--reference", str(tmp_path / "results")])
    assert_one_line(code, err, 2, words)
    assert snapshot(tmp_path) == before
