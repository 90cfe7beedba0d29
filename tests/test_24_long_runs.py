"""Runs as long as ImageNet's: a run SIGKILLed within an epoch resumes from its step checkpoint (--save-every-steps) to
the metrics and weights of a run that went straight through, bit for bit, in one process and under torchrun (2 gloo
processes: the same remaining batches on every rank); and the README's multi-node torchrun line, run as two "nodes"
of one process each on this machine with c10d rendezvous on localhost."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# 80 synthetic CIFAR-10 images with TET's crops and flips, a global batch of 16: 5 steps an epoch, in 1 or 2 processes
TINY = ["--arch", "resnet_tiny", "--width", "0.25", "--dataset", "cifar10", "--train-per-class", "8", "--test-per-class", "2",
        "--T", "2", "--batch-size", "16", "--epochs", "2", "--tse", "--no-progress", "--no-tensorboard"]
WALL_CLOCK = ("img_per_s", "epoch_seconds")


def run(args, env=None, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, timeout=300, **kw)


def history(folder):
    "Per-epoch metrics without the wall-clock figures."
    rows = [json.loads(l) for l in Path(folder, "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in rows]


def holders(path: Path) -> list[str]:
    "The processes with `path` open, as `pid command`."
    found = []
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd) == str(path): found.append(f"{fd.parts[2]} {Path('/proc', fd.parts[2], 'cmdline').read_text().replace(chr(0), ' ')[:120]}")
        except OSError: pass
    return found


def wait_for_owner_to_exit(folder: Path, limit: float = 60.0) -> None:
    "A killed run's processes may outlive its launcher by a moment; a resume waits for them, as the refusal tells a user to."
    from tse_repro.runs import RunFolder
    deadline = time.monotonic() + limit
    while RunFolder(folder).is_live():
        assert time.monotonic() < deadline, f"{folder} is still owned {limit:.0f} s after the kill, by {holders(folder / '.owner')}"
        time.sleep(0.1)


def weights(folder):
    return torch.load(Path(folder, "checkpoint.pt"), weights_only=False)["model"]


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    from tse_repro.fixtures import write_synthetic
    return str(write_synthetic("cifar10", tmp_path_factory.mktemp("cifar10"), per_class=8))


@pytest.mark.parametrize("launch", [[sys.executable, "-m", "tse_repro.train"],
                                    [BIN / "torchrun", "--standalone", "--nproc_per_node=2", "-m", "tse_repro.train"]],
                         ids=["one-process", "torchrun-2-gloo"])
def test_sigkill_within_an_epoch_resumes_bit_for_bit(tmp_path, cifar, launch):
    """A step checkpoint every 4 steps, SIGKILL in epoch 2 after its step 4 (the run's step 9; the checkpoint is of step
    8, epoch 2's step 3): the resumed run skips epoch 2's first 3 batches, redoes the 4th and ends as the straight run."""
    args = [*launch, *TINY, "--data-path", cifar]
    straight = run([*args, "--out", tmp_path / "straight"])  # no step checkpoints: where a run saves changes nothing
    assert straight.returncode == 0, straight.stderr[-3000:]
    killed = run([*args, "--save-every-steps", "4", "--out", tmp_path / "resumed"], env={"TSE_TEST_KILL_AT": "1:4"})
    assert killed.returncode != 0 and (len(launch) > 3 or killed.returncode == -signal.SIGKILL), killed.stderr[-3000:]
    state = torch.load(tmp_path / "resumed/checkpoint.pt", weights_only=False)
    within = state["within_epoch"]
    assert (state["epoch"], state["step"], within["epoch"], within["steps"]) == (0, 8, 1, 3)
    world = 2 if len(launch) > 3 else 1
    assert within["world"] == world and len(within["ranks"]) == world
    if world == 2:  # each rank's own augmentation stream, and its own share of the epoch's statistics
        a, b = within["ranks"]
        assert not torch.equal(a["rng"]["dataset"], b["rng"]["dataset"]) and a["running"]["seen"] == b["running"]["seen"] == 24
    assert len(history(tmp_path / "resumed")) == 1
    wait_for_owner_to_exit(tmp_path / "resumed")
    resumed = run([*args, "--save-every-steps", "4", "--out", tmp_path / "resumed", "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed in epoch 2 after its step 3 of 5" in resumed.stdout, resumed.stdout
    assert history(tmp_path / "resumed") == history(tmp_path / "straight")
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "the same weights, bit for bit"


def readme_multinode_command() -> list[str]:
    "The documentation's multi-node torchrun line (the one with --nnodes; README.md and docs/), continuation lines joined."
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(page.read_text() for page in pages).replace("\\\n", " ")
    lines = [l.strip() for l in text.splitlines() if "torchrun" in l and "--nnodes" in l and not l.lstrip().startswith("#")]
    assert len(lines) == 1, lines
    return lines[0].split()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_readme_multinode_line_runs_as_two_nodes(tmp_path):
    """The README's line, started twice at once as two nodes of one process each; the test only adds flags: the local
    endpoint and one process per node to torchrun, a tiny recipe to the trainer (argparse keeps a flag's last value)."""
    command = readme_multinode_command()
    at = command.index("-m")
    launcher, trainer = command[:at], command[at:]
    assert launcher[0] == ".venv/bin/torchrun" and "--nnodes=2" in launcher and "--rdzv-backend=c10d" in launcher
    launcher = [str(ROOT / launcher[0]), *launcher[1:], "--nproc-per-node=1", f"--rdzv-endpoint=localhost:{free_port()}"]
    out = tmp_path / "two-nodes"
    tiny = ["--arch", "resnet_tiny", "--width", "0.25", "--dataset", "digits", "--train-per-class", "16", "--test-per-class", "8",
            "--T", "2", "--batch-size", "32", "--epochs", "1", "--no-amp", "--no-channels-last", "--workers", "0", "--no-pin-memory",
            "--no-progress", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen([*launcher, *trainer, *tiny], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = [node.communicate(timeout=300) for node in nodes]
    for node, (stdout, stderr) in zip(nodes, outputs):
        assert node.returncode == 0, stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["ranks_in_sync"] is True
    assert summary["config"]["arch"] == "resnet_tiny" and summary["epochs_done"] == 1
    said = "".join(stdout for stdout, _ in outputs)
    assert said.count("tse-repro |") == 1 and len(re.findall(r'^\{"epoch": 1', said, flags=re.M)) == 1, "only global rank 0 speaks"
    assert {p.name for p in out.iterdir()} >= {"config.json", "metrics.jsonl", "checkpoint.pt", "summary.json"}
