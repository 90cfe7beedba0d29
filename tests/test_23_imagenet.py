"""ImageNet's wrong input, through `tse-train`: each case one line naming the fix, exit status 2, and every file that
existed before unchanged, byte for byte. The folder checks come before anything is written; an unreadable image is
found when it is loaded and stops the run (never skipped), with the file named instead of PIL's traceback."""
import shutil
from pathlib import Path

import pytest

from test_20_bad_input import assert_one_line, snapshot, train_main

IMAGENET = ["--arch", "sew_resnet34", "--width", "0.125", "--dataset", "imagenet", "--T", "1", "--batch-size", "4",
            "--epochs", "1", "--no-progress", "--no-tensorboard"]


def fixture(tmp_path: Path) -> Path:
    "The offline ImageNet fixture (4 classes, 1 JPEG each in train/ and val/); returns its imagenet/ folder."
    from tse_repro.fixtures import write_synthetic
    return write_synthetic("imagenet", tmp_path / "data", per_class=1) / "imagenet"


def no_class_folders(base):  # the usual mistake: val/ as the release's loose files
    for c in list((base / "val").iterdir()): shutil.rmtree(c)
    (base / "val" / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"\xff\xd8")


def other_val_classes(base):
    (base / "val" / "n00000003").rename(base / "val" / "n09999999")


def zero_byte_image(base):  # a failed copy: the dry run refuses it as the run does
    (base / "val" / "n00000001" / "n00000001_0.JPEG").write_bytes(b"")


def empty_class(base):
    for f in (base / "train" / "n00000002").iterdir(): f.unlink()


@pytest.mark.parametrize("damage, words", [
    (no_class_folders, ["imagenet/val holds no class folders (1 file directly in it); put each class's images in",
                        "extract_ILSVRC.sh"]),
    (other_val_classes, ["imagenet/val has other classes than", "only in train: n00000003; only in val: n09999999",
                         "give val/ exactly train's class folders"]),
    (empty_class, ["imagenet/train has 1 empty class folder(s), n00000002: no image files", "add its images or remove the class"]),
    (zero_byte_image, ["imagenet/val holds 1 empty image file(s) (0 bytes), e.g.", "n00000001_0.JPEG: replace them"]),
    (lambda base: shutil.rmtree(base), ["imagenet/train not found; put ImageNet's train/ and val/ class folders (train/<class>/*.JPEG"])])
def test_imagenet_folder_refused_before_anything_is_written(tmp_path, damage, words):
    base = fixture(tmp_path)
    damage(base)
    before = snapshot(tmp_path)
    for dry in ([], ["--dry-run"]):
        code, err = train_main([*IMAGENET, "--data-path", str(tmp_path / "data"), "--out", str(tmp_path / "run"), *dry])
        assert_one_line(code, err, 2, "tse-train: error: ", *words)
        assert snapshot(tmp_path) == before and not (tmp_path / "run").exists()
    print(err)


def test_unreadable_image_stops_the_run_naming_the_file(tmp_path):
    base = fixture(tmp_path)
    bad = base / "train" / "n00000001" / "n00000001_0.JPEG"
    bad.write_bytes(bad.read_bytes()[:200])  # a truncated JPEG: PIL would raise OSError, Truncated File Read
    data_before = snapshot(tmp_path / "data")
    code, err = train_main([*IMAGENET, "--data-path", str(tmp_path / "data"), "--out", str(tmp_path / "run")])
    assert_one_line(code, err, 2, f"tse-train: error: {bad} is not a readable image (OSError: Truncated File Read)",
                    "replace it with a good copy or delete it (a run stops rather than skip an image)")
    assert "Traceback" not in err and snapshot(tmp_path / "data") == data_before
    assert not (tmp_path / "run" / "summary.json").exists()  # no result from a run that could not read its data
    print(err)


def test_imagenet_fixture_trains_and_its_head_follows_the_folder(tmp_path):
    import json
    fixture(tmp_path)
    code, err = train_main([*IMAGENET, "--data-path", str(tmp_path / "data"), "--out", str(tmp_path / "run")])
    assert code == 0, err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["config"]["dataset"] == "imagenet", summary
    from tse_repro.identity import run_identity
    data = run_identity(summary["config"])["data"]  # the cheap signature identifies the data
    assert [f[0] for f in data["files"]] == ["imagenet/train: 4 classes, 4 images", "imagenet/val: 4 classes, 4 images"], data
