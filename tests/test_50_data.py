"""The exported tse_repro.data as the trainer uses it: shapes, balance, seeded loaders, clear errors, real data."""
import numpy as np
import pytest
import torch

from tse_repro.data import DataInfo, get_datasets, make_loaders, read_nmnist_bin, nmnist_npz_events, shared_file


def test_digits_shapes_and_balance():
    train, test, info = get_datasets("digits", train_per_class=30, test_per_class=10)
    assert info == DataInfo(10, 1, 16, False)
    assert np.bincount(train.labels.numpy()).tolist() == [30] * 10 and len(test) == 100
    x, y = train[0]
    assert x.shape == (1, 16, 16) and x.dtype == torch.float32 and isinstance(y, int)


def test_same_seed_same_first_batch(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        np.savez(tmp_path / f"cifar10_{split}.npz", x=rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8),
                 y=np.tile(np.arange(10, dtype=np.uint8), 4))
    train, test, _ = get_datasets("cifar10", tmp_path)
    a, b = (next(iter(make_loaders(train, test, 8, seed=3)[0]))[0] for _ in range(2))
    assert torch.equal(a, b)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", b"garbage"])
def test_corrupt_file_names_path_and_fix(tmp_path, content):
    (tmp_path / "cifar10_train.npz").write_bytes(content)
    with pytest.raises(ValueError, match=r"cifar10_train\.npz is corrupt.*--data-path"):
        get_datasets("cifar10", tmp_path)


def test_missing_data_names_path_and_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"pass --download"):
        get_datasets("cifar10", tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match=r"no DVS-CIFAR10 data"):
        get_datasets("dvs-cifar10", tmp_path)


def test_real_nmnist_bins_match_npz():
    path = shared_file("nmnist_small_events.npz")
    if path is None: pytest.skip("no shared data")
    recordings, labels, _ = nmnist_npz_events(path)
    ids = np.load(path)["sample_id"].tolist()
    for b in sorted((path.parent / "nmnist_raw").glob("*.bin")):
        sid, digit = (int(s) for s in b.stem.removeprefix("test_").split("_label"))
        assert np.array_equal(read_nmnist_bin(b), recordings[ids.index(sid)]) and labels[ids.index(sid)] == digit


def test_real_cifar100_balanced_subset():
    path = shared_file("cifar100_train_10k.npz")
    if path is None: pytest.skip("no shared data")
    train, test, info = get_datasets("cifar100", path.parent, train_per_class=3, test_per_class=1)
    assert info.num_classes == 100 and len(train) == 300 and len(test) == 100
    assert np.bincount(train.labels.numpy()).tolist() == [3] * 100
    assert train.images.dtype == torch.uint8 and train[0][0].dtype == torch.float32
