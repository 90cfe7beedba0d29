"""The committed references: rebuilding a reference's report from its own committed runs changes no tracked file,
and nothing committed holds a path of the machine it ran on."""
import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = sorted(p.parent.name for p in (ROOT / "results").glob("*/profile.yaml"))


def tracked(folder: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", str(folder.relative_to(ROOT))], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    return [str(Path(f).relative_to(folder.relative_to(ROOT))) for f in out]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", REFERENCES)
def test_rebuilt_reference_report_changes_no_tracked_file(tmp_path, monkeypatch, name):
    "A copy of the reference's tracked files (no checkpoints, as on a fresh clone), its report rebuilt, compared byte for byte."
    from tse_repro.reference import report_reference
    src, dst = ROOT / "results" / name, tmp_path / "results" / name
    files = tracked(src)
    for f in files:
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / f, dst / f)
    monkeypatch.chdir(tmp_path)  # the report records paths relative to the working directory, as `make report` does
    report_reference(name, "results")
    changed = [f for f in files if not (dst / f).exists() or digest(dst / f) != digest(src / f)]
    assert not changed, f"rebuilding results/{name}'s report changed {changed}"
    new = sorted(set(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file() and not p.name.startswith(".")) - set(files))
    assert not new, f"rebuilding results/{name}'s report wrote files that are not committed: {new}"


def test_no_machine_paths_committed():
    for f in tracked(ROOT / "results"):
        path = ROOT / "results" / f
        if path.suffix in (".json", ".jsonl", ".md", ".ipynb", ".csv", ".yaml", ".txt"):
            text = path.read_text()
            assert "/work/" not in text and "/tmp/" not in text and "/root/" not in text, f"results/{f} holds a path of this machine"


def test_readme_blocks_come_from_the_references():
    "Every generated block of the README is what `make report` writes from results/ and profiles/ now."
    from tse_repro.readme import README_BLOCK, readme_with_blocks
    text = (ROOT / "README.md").read_text()
    blocks = [(m["kind"], m["name"]) for m in README_BLOCK.finditer(text)]
    assert {kind for kind, _ in blocks} == {"datasets", "ablation", "profiles"}, blocks
    named = [name for kind, names in blocks if kind != "profiles" for name in re.split(r"[,+]", names)]
    assert all((ROOT / "profiles" / f"{name}.yaml").exists() for name in named), blocks
    assert readme_with_blocks(text, ROOT) == text, "the README's generated blocks are out of date: run make report PROFILE=<profile>"


def test_docs_tables_are_the_reports():
    "Every table of docs/results.md is copied, row for row, from the report its section names."
    text = (ROOT / "docs" / "results.md").read_text()
    sections = re.split(r"(?m)^## ", text)[1:]
    checked = 0
    for section in sections:
        named = re.search(r"`(results/[\w.-]+)/report\.md`", section.splitlines()[0])
        if not named:
            continue
        report = (ROOT / named[1] / "report.md").read_text()
        for table in re.findall(r"(?m)(?:^\|.*\|\n)+", section):
            assert table in report, f"docs/results.md, section {section.splitlines()[0]!r}: a table not in {named[1]}/report.md"
            checked += 1
    assert checked >= 5, checked
