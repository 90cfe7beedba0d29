"""Every command block of README.md and docs/*.md, replayed in order on a fresh copy of the checkout, in two independent chains
(the demo sweep with its reference, and the single runs), each on its own copy.

The copy holds the files git tracks (and the untracked ones it does not ignore) with their times, and shares this
checkout's `.venv` (make is told not to rebuild it). Each command runs as written, except where keeping CI short
needs a change, always by adding parameters: a `make reproduce` of the demo profile gets a one-epoch, few-image
recipe (`ARGS=--set ...`), of another profile, or a `make extend`, `ARGS=--list` (planning only); a `tse-train` run and the papermill
run notebook get one epoch on a few images; a `torchrun` launch becomes the same command line checked by `--dry-run`; `make lab` is started, its
printed address fetched, then stopped; `make test` is this very run and is skipped. The transcript (command, exit
status, wall time) is printed; every command must exit 0 and none may print the kernel's TCP warning."""
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from archives import official_archive

ROOT = Path(__file__).resolve().parents[1]
SHRINK_DEMO = "--set epochs=1 --set train_per_class=2 --set test_per_class=1 --set seeds=[0,1]"
TINY_TRAIN = ["--epochs", "1", "--train-per-class", "2", "--test-per-class", "1"]
TINY_NOTEBOOK = ["-p", "epochs", "1", "-y", "config: {train_per_class: 2, test_per_class: 1}"]
KERNEL_WARNING = "Kernel is running over TCP without encryption"  # ipykernel's start-up warning on a TCP kernel


def readme_commands(text: str) -> list[str]:
    "The shell commands of every ```sh block, in order (continuation lines joined, comments dropped)."
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip() if not line.lstrip().startswith("#") else ""
            if line: commands.append(re.sub(r"\s+", " ", line))
    return commands


def documentation() -> str:
    "README.md, then every page of docs/ in name order: every command shown anywhere, in that order."
    return "\n".join(page.read_text() for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])


def adapt(command: str) -> tuple[list[str] | None, str]:
    "How the test runs a README command: (argv, what was changed), or (None, why it is not run)."
    words = shlex.split(command)
    assert not re.fullmatch(r"[A-Z_]+=.*", words[0]), f"{command}: an environment prefix; give the variable to make instead"
    if words[:2] == ["make", "test"]: return None, "this test suite is make test"
    if words[:2] == ["make", "lab"]: return ["make", "-o", ".venv/.installed", "lab", "LAB_PORT=8941"], "started, its address fetched, stopped"
    if words[:2] == ["make", "reproduce"]:
        demo = not any(w.startswith("PROFILE=") and w != "PROFILE=demo" for w in words)
        extra = f"ARGS={SHRINK_DEMO}" if demo else "ARGS=--list"
        return ["make", "-o", ".venv/.installed", *words[1:], extra], extra
    if words[:2] == ["make", "extend"]: return ["make", "-o", ".venv/.installed", *words[1:], "ARGS=--list"], "ARGS=--list (hours of training)"
    if words[0] == "make": return ["make", "-o", ".venv/.installed", *words[1:]], "make told not to rebuild .venv"
    if words[0].endswith("torchrun"):
        args = words[words.index("tse_repro.train") + 1:]
        note = "torchrun replaced by the same flags with --dry-run"
        if any(w.startswith("--nnodes") for w in words): note += " (tests/test_24_long_runs.py runs this line as two nodes)"
        return [".venv/bin/python", "-m", "tse_repro.train", *args, "--dry-run"], note
    if words[0].endswith("tse-data"):
        return [w for w in words if w != "--download"], "no --download (no internet): the official archive, made offline, already there"
    if words[0].endswith("tse-train") and "--dry-run" not in words: return [*words, *TINY_TRAIN], " ".join(TINY_TRAIN)
    at = next((i for i, w in enumerate(words) if w.endswith("papermill")), None)   # papermill, or the project's quiet papermill
    if at is not None and words[at + 1].endswith("run.ipynb"): return [*words, *TINY_NOTEBOOK], " ".join(TINY_NOTEBOOK)
    return words, ""


def fresh_copy(dest: Path) -> Path:
    "The checkout's tracked and unignored files, times kept, sharing its .venv."
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    (dest / ".venv").symlink_to(ROOT / ".venv")
    return dest


def run_lab(argv, cwd, env) -> int:
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        lines = [proc.stdout.readline() for _ in range(1)]
        while not re.search(r"http://\S+", lines[-1]) and lines[-1] and len(lines) < 20: lines.append(proc.stdout.readline())
        found = re.search(r"http://\S+", lines[-1])
        assert found, f"make lab printed no address in its first lines: {lines}"
        url = found.group(0)
        for _ in range(60):
            try:
                with urllib.request.urlopen(url, timeout=5) as r: return 0 if r.status == 200 else r.status
            except OSError: time.sleep(1)
        return 1
    finally:
        os.killpg(proc.pid, 15); proc.wait(timeout=30)


def chain(command: str) -> str:
    "Which of the two independent chains a README command belongs to: the demo sweep and its reference, or the single runs."
    words = shlex.split(command)
    return "sweep" if words[:2] in (["make", "reproduce"], ["make", "reference"], ["make", "report"]) or "--profile" in words else "single runs"


@pytest.mark.parametrize("which", ["sweep", "single runs"])
def test_readme_commands_run_as_written(tmp_path, which):
    "Each chain in README order on its own fresh copy; the two chains share nothing, so `make test`'s workers run them at once."
    commands = readme_commands(documentation())
    assert any(c.startswith("make reproduce") for c in commands) and any(c.startswith("make test") for c in commands)
    commands = [c for c in commands if chain(c) == which]
    clone = fresh_copy(tmp_path / "clone")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    transcript, failures = [], []
    from tse_repro.fixtures import write_synthetic
    full_split_names = write_synthetic("cifar10", tmp_path / "cifar10-arrays", per_class=2)  # files named as the full split's
    for command in commands:
        argv, note = adapt(command)
        if argv is None:
            transcript.append((command, "skipped", 0.0, note)); continue
        if "--dry-run" in argv and "--dataset" in argv and "--data-path" not in argv:  # a dry run reads the data as the run would
            argv = [*argv, "--data-path", str(full_split_names)]
            note = "; ".join(filter(None, [note, "--data-path: synthetic CIFAR-10 arrays under the full split's file names"]))
        if argv[0].endswith("tse-data"):  # the official archive in ./data, as --download leaves it, made from the shared files
            if not os.environ.get("TSE_DATA"):
                transcript.append((command, "skipped", 0.0, "needs TSE_DATA to make the official archive offline")); continue
            (clone / "data").mkdir(exist_ok=True)
            official_archive(argv[1], Path(os.environ["TSE_DATA"]), clone / "data")
        start = time.perf_counter()
        if argv[:4] == ["make", "-o", ".venv/.installed", "lab"]: code, out = run_lab(argv, clone, env), ""
        else:
            outside = {k: v for k, v in env.items() if k != "TSE_DATA"}  # tse-data as a user elsewhere runs it
            r = subprocess.run(argv, cwd=clone, env=outside if argv[0].endswith("tse-data") else env,
                               capture_output=True, text=True, timeout=900)
            code, out = r.returncode, r.stdout[-1500:] + r.stderr[-1500:]
            if KERNEL_WARNING in r.stdout + r.stderr: failures.append(f"{command}\n  -> printed the kernel's warning: {KERNEL_WARNING} ...")
        transcript.append((command, code, time.perf_counter() - start, note))
        if code != 0: failures.append(f"{command}\n  -> exit {code}\n{out}")
    print(f"\n{which}:\n| README command | exit | wall (s) | what the test changed |\n|---|---|---|---|")
    for command, code, seconds, note in transcript: print(f"| `{command}` | {code} | {seconds:.1f} | {note} |")
    assert not failures, "\n\n".join(failures)
    if which == "sweep": assert (clone / "results" / "demo" / "report.md").exists() and (clone / "runs" / "demo" / "verdict.md").exists()
    else: assert (clone / "runs" / "cli" / "tse" / "summary.json").exists() and (clone / "runs" / "mine" / "tse.ipynb").exists()


def test_kernel_warning_is_caught_and_the_readme_way_is_quiet(tmp_path):
    "The check above can fail: plain papermill's kernel (TCP) prints the warning; the README's way (IPC) does not."
    nb = tmp_path / "one.ipynb"
    nb.write_text('{"cells": [{"cell_type": "code", "execution_count": null, "id": "a1", "metadata": {}, "outputs": [], "source": ["1 + 1"]}], '
                  '"metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}')
    said = {}
    for way, argv in [("plain", [str(ROOT / ".venv/bin/papermill")]), ("readme", [str(ROOT / ".venv/bin/python"), "-m", "tse_repro.experiments", "papermill"])]:
        r = subprocess.run([*argv, str(nb), str(tmp_path / f"{way}.ipynb")], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        said[way] = r.stdout + r.stderr
    assert KERNEL_WARNING in said["plain"], said["plain"]
    assert KERNEL_WARNING not in said["readme"], said["readme"]
    assert not list(tmp_path.glob("kernel-*")), "IPC sockets left in the working folder"
