"""Project-level checks that run first: notebooks clean, package in sync with them, one set of pins."""
import configparser
import filecmp
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent


def _tree_diff(a: Path, b: Path, pattern: str):
    names = {p.relative_to(a) for p in a.rglob(pattern)} | {p.relative_to(b) for p in b.rglob(pattern)}
    return sorted(str(n) for n in names
                  if not ((a / n).exists() and (b / n).exists() and filecmp.cmp(a / n, b / n, shallow=False)))


def test_notebooks_are_clean(root, tmp_path):
    "`nbdev_clean` must change nothing: run it on a copy so a dirty tree is never rewritten."
    shutil.copytree(root / "nbs", tmp_path / "nbs", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy(root / "settings.ini", tmp_path)
    subprocess.run([BIN / "nbdev_clean"], cwd=tmp_path, check=True, capture_output=True)
    changed = _tree_diff(root / "nbs", tmp_path / "nbs", "*.ipynb")
    assert not changed, f"notebooks not clean: {changed}; run `make export` and commit"


def test_package_in_sync_with_notebooks(root, tmp_path):
    "`nbdev_export` must change nothing under tse_repro/ (the package is exported, never hand-edited)."
    shutil.copytree(root / "nbs", tmp_path / "nbs", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copytree(root / "tse_repro", tmp_path / "tse_repro", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(root / "settings.ini", tmp_path)
    subprocess.run([BIN / "nbdev_export"], cwd=tmp_path, check=True, capture_output=True)
    changed = _tree_diff(root / "tse_repro", tmp_path / "tse_repro", "*.py")
    assert not changed, f"tse_repro/ differs from the notebooks' export: {changed}; run `make export` and commit"


def _settings(root):
    cfg = configparser.ConfigParser(delimiters=["="])
    cfg.read(root / "settings.ini")
    return cfg["DEFAULT"]


def test_environment_yml_agrees_with_settings(root):
    env = yaml.safe_load((root / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    assert "-e .[dev]" in pip_section, "environment.yml must install the package with its dev extras"
    pins = dict(r.split("==") for r in shlex.split(_settings(root)["requirements"]) if "==" in r)
    for req in pip_section:
        if "==" in req:
            name, version = req.split("==")
            assert pins.get(name) == version, f"environment.yml pins {req}, settings.ini says {pins.get(name)}"


def test_settings_keep_papermill_tags(root):
    assert _settings(root)["allowed_cell_metadata_keys"].strip() == "tags"


def test_ci_runs_readme_test_command(root):
    assert "make test" in (root / "README.md").read_text()
    assert "make test" in (root / ".ci/run").read_text()


def test_guide_notebooks_hold_outputs_of_this_code(root):
    "The guide notebooks committed executed (`make docs`) hold figures made from the code as it is now."
    import json
    from tse_repro.experiments import GUIDES, outputs_made_from
    for name in GUIDES:
        nb = json.loads((root / "nbs" / name).read_text())
        made = nb["metadata"].get("tse_outputs", {}).get("made_from")
        assert made == outputs_made_from(nb), f"nbs/{name}'s outputs were made from other code; run `make docs` (with TSE_DATA set) and commit"
        assert any("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", [])), f"nbs/{name} holds no figure; run `make docs`"
