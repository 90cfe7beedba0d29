"""Project-level checks that run first: notebooks clean, package in sync with them, one set of pins."""
import ast
import configparser
import filecmp
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from notebook_shape import shape

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


def _lock(root) -> dict:
    "requirements-lock.txt's exact pins, by canonical name."
    pins = {}
    for line in (root / "requirements-lock.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.strip().split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_environment_yml_agrees_with_lock(root):
    "environment.yml installs through the lock `make install` uses, and pins what it names as the lock does."
    env = yaml.safe_load((root / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    assert "-e .[dev]" in pip_section, "environment.yml must install the package with its dev extras"
    assert "-c requirements-lock.txt" in pip_section, "environment.yml must install through requirements-lock.txt"
    lock = _lock(root)
    for req in pip_section:
        if "==" in req:
            name, version = req.split("==")
            locked = lock.get(canonicalize_name(name))
            assert locked == version, f"environment.yml pins {req}, requirements-lock.txt says {locked}"


def test_lock_satisfies_settings(root):
    """`make install` installs through requirements-lock.txt, and the lock pins every requirement of
    settings.ini (dev extras included) at a version inside the range settings.ini declares."""
    install = (root / "Makefile").read_text().split("\n$(STAMP):", 1)[1].split("\n\n", 1)[0]
    assert "requirements-lock.txt" in install.splitlines()[0], "the install stamp must depend on the lock"
    assert '-c requirements-lock.txt -e ".[dev]"' in install, "make install must install through the lock"
    lock, cfg = _lock(root), _settings(root)
    for req in map(Requirement, shlex.split(cfg["requirements"]) + shlex.split(cfg["dev_requirements"])):
        locked = lock.get(canonicalize_name(req.name))
        assert locked, f"requirements-lock.txt pins no {req.name}, which settings.ini requires"
        assert req.specifier.contains(locked, prereleases=True), (
            f"requirements-lock.txt pins {req.name}=={locked}, outside settings.ini's {req}")


def test_settings_keep_papermill_tags(root):
    assert _settings(root)["allowed_cell_metadata_keys"].strip() == "tags"


def test_ci_runs_readme_test_command(root):
    assert "make test" in (root / "README.md").read_text()
    assert "make test" in (root / ".ci/run").read_text()


def test_readme_is_a_front_page(root):
    "At most 12,000 characters, in the order a newcomer reads; every page it links exists."
    text = (root / "README.md").read_text()
    assert len(text) <= 12_000, f"README.md has {len(text)} characters; move detail to docs/"
    titles = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert titles == ["The result at a glance", "Quick start", "Bring your own model", "The command line",
                      "Profiles", "Reproducing and extending a reference", "The notebooks", "Citation and licence"], titles
    for link in re.findall(r"\]\(((?:docs/|results/|LICENSE)[^)#]*)\)", text):
        assert (root / link).exists(), f"README.md links {link}, which does not exist"


def test_guide_notebooks_hold_outputs_of_this_code(root):
    "The guide notebooks committed executed (`make docs`) hold figures made from the code as it is now."
    import json
    from tse_repro.notebooks import GUIDES, outputs_made_from
    for name in GUIDES:
        nb = json.loads((root / "nbs" / name).read_text())
        made = nb["metadata"].get("tse_outputs", {}).get("made_from")
        assert made == outputs_made_from(nb), f"nbs/{name}'s outputs were made from other code; run `make docs` (with TSE_DATA set) and commit"
        assert any("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", [])), f"nbs/{name} holds no figure; run `make docs`"


def test_lint(root):
    "ruff, with the rules in pyproject.toml, finds nothing in the notebooks or the package."
    lint = subprocess.run([BIN / "ruff", "check", "--no-cache", "nbs", "tse_repro"], cwd=root,
                          capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout[-4000:] + lint.stderr[-1000:]


def test_package_lines_fit_100_columns(root):
    """Lines over 100 characters in the package come only from `__all__`, which nbdev 2.4.14 wraps at
    120 (`nbdev.maker`, a width it does not let a project set); a notebook's description, the module's
    docstring, fits too."""
    long = []
    for module in sorted((root / "tse_repro").glob("*.py")):
        if module.name == "_modidx.py":
            continue
        in_all = False
        for number, line in enumerate(module.read_text().splitlines(), 1):
            in_all = line.startswith("__all__") or (in_all and line.startswith(" "))
            if len(line) > 100 and not in_all:
                long.append(f"{module.name}:{number}")
    assert not long, f"lines over 100 characters: {long[:20]}; shorten them in the notebooks (a description: 94)"


def test_modules_stay_small(root):
    "Each module holds one concept and stays under 500 lines."
    sizes = {m.name: len(m.read_text().splitlines()) for m in (root / "tse_repro").glob("*.py")}
    large = {name: n for name, n in sizes.items() if n >= 500 and name != "_modidx.py"}
    assert not large, f"modules of 500 lines or more: {large}; split them by concept"


def test_no_function_imports_the_package(root):
    "Imports run one way, at the top of each module: no function imports anything."
    inside = []
    for module in sorted((root / "tse_repro").glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        inside.append(f"{module.name}:{inner.lineno}")
    assert not inside, f"imports inside functions: {inside}; move them to the module's import cell"


def test_notebooks_read_like_fastcore(root):
    "One definition per exported cell, most of them followed by their test (tests/notebook_shape.py)."
    figures = shape()
    assert figures["two_or_more_definitions"] <= 33, figures
    assert figures["followed_by_test"] >= 0.75, figures
    assert figures["median_lines"] <= 12, figures
