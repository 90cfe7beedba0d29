"""Archives in the official CIFAR python format, made offline from the shared files (see test_25_datafiles.py)."""
import hashlib

import numpy as np

from tse_repro.data import CIFAR_FILES
from tse_repro.datafiles import ROW_KEYS, selection_rank, write_archive

OFFICIAL_TRAIN_PER_CLASS = {"cifar10": 5000, "cifar100": 500}


def load_arrays(path):
    with np.load(path) as arrays:
        return {key: arrays[key] for key in arrays.files}


def _shuffled(arrays, rng):
    order = rng.permutation(len(arrays["y"]))
    return {key: a[order] if key in ROW_KEYS else a for key, a in arrays.items()}


def _padding_names(split, label, after, count):
    "`count` file names of class `label` that rank after the rank key `after`."
    names, i = [], 0
    while len(names) < count:
        name = f"padding_{label}_{i:06d}.png"
        if hashlib.sha256(f"{split}/{name}".encode()).hexdigest() > after: names.append(name)
        i += 1
    return names


def _official_train(name, kept, rng):
    "The shared training subset padded to the official split's size, in a shuffled order."
    ranks, labels, names = selection_rank("train", kept["filenames"]), [], []
    for c in np.unique(kept["y"]):
        extra = OFFICIAL_TRAIN_PER_CLASS[name] - int((kept["y"] == c).sum())
        names += _padding_names("train", c, max(ranks[kept["y"] == c]), extra)
        labels += [c] * extra
    labels = np.array(labels, np.uint8)
    padded = {**kept, "x": np.concatenate([kept["x"], rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)]),
              "y": np.concatenate([kept["y"], labels]), "filenames": np.concatenate([kept["filenames"], np.array(names)])}
    if "y_coarse" in kept: padded["y_coarse"] = np.concatenate([kept["y_coarse"], kept["fine_to_coarse"][labels]])
    return _shuffled(padded, rng)


def official_archive(name, shared, folder, packed=True):
    "The official archive of `name` in `folder`: the shared files' images, padded to the official split sizes."
    (train_file, _, _), (test_file, _, _) = CIFAR_FILES[name]
    rng = np.random.default_rng(0)
    splits = {"train": _official_train(name, load_arrays(shared / train_file), rng), "test": _shuffled(load_arrays(shared / test_file), rng)}
    write_archive(name, folder, splits, packed)
    return splits
