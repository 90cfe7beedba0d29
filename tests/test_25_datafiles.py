"""`tse-data` rebuilds the shared CIFAR files from archives in the official format, at the official size, offline.

The archives are made here from the shared files themselves: their images and file names, padded with random images
whose names rank after the kept ones, to 5,000 (CIFAR-10) or 500 (CIFAR-100) training images per class, in a
shuffled order as the official batches have. A rebuild must give back the shared arrays, and match the committed
content digests; a tampered archive must be refused with nothing written.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tse_repro.data import CIFAR_FILES
from tse_repro.datafiles import CONTENT_SHA256, npz_digest, write_archive

from archives import load_arrays, official_archive

@pytest.mark.parametrize("name, packed", [("cifar10", False), ("cifar100", True)])
def test_rebuilds_the_shared_files_from_an_official_archive(shared_data, tmp_path, name, packed):
    splits = official_archive(name, shared_data, tmp_path, packed)
    assert len(splits["train"]["y"]) == 50_000 and len(splits["test"]["y"]) == 10_000
    done = subprocess.run([sys.executable, "-m", "tse_repro.datafiles", name, "--data-path", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for file, _, _ in CIFAR_FILES[name]:
        assert f"wrote {tmp_path / file}" in done.stdout and CONTENT_SHA256[file] in done.stdout, done.stdout
        rebuilt, shared = load_arrays(tmp_path / file), load_arrays(shared_data / file)
        assert sorted(rebuilt) == sorted(shared)
        for key in shared:
            assert rebuilt[key].dtype == shared[key].dtype and np.array_equal(rebuilt[key], shared[key]), (file, key)
        assert npz_digest(tmp_path / file) == CONTENT_SHA256[file] == npz_digest(shared_data / file)


def test_refuses_a_tampered_archive_and_writes_nothing(shared_data, tmp_path):
    splits = official_archive("cifar100", shared_data, tmp_path, packed=False)
    first = np.flatnonzero(splits["train"]["filenames"] == load_arrays(shared_data / "cifar100_train_10k.npz")["filenames"][0])[0]
    splits["train"]["x"][first, 0, 0, 0] ^= 1  # one pixel of one kept image
    write_archive("cifar100", tmp_path, splits, packed=False)
    tse_data = Path(sys.executable).parent / "tse-data"  # the console script
    done = subprocess.run([tse_data, "cifar100", "--data-path", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == "", (done.returncode, done.stdout)
    assert done.stderr.count("\n") == 1 and "yields other content for cifar100_train_10k.npz" in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-100-python"]


def test_missing_data_is_refused_before_any_run_starts(tmp_path):
    "A sweep without its data files stops in one line naming tse-data, with no run folder made and no kernel started."
    empty = tmp_path / "data"
    empty.mkdir()
    done = subprocess.run([sys.executable, "-m", "tse_repro.experiments", "--profile", "cifar10-evidence", "--data-path",
                           str(empty), "--work", str(tmp_path / "runs")], capture_output=True, text=True)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr == (f"reproduce: error: {empty}/cifar10_train_20k.npz not found; make it with `tse-data cifar10 "
                           f"--data-path {empty} --download`, or point --data-path ($TSE_DATA) at the folder that holds it\n")
    assert not (tmp_path / "runs").exists()
    done = subprocess.run([sys.executable, "-m", "tse_repro.train", "--dataset", "cifar10", "--train-file",
                           "cifar10_train_20k.npz", "--data-path", str(empty), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "tse-data cifar10" in done.stderr, done.stderr
    assert not (tmp_path / "run").exists()
