"""The committed references: rebuilding a reference's report from its own committed runs changes no tracked file,
and nothing committed holds a path of the machine it ran on."""
import hashlib
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


def test_readme_claims_come_from_the_references():
    "Every `<!-- claims: <profile> -->` block of the README is what `make report PROFILE=<profile>` writes from results/ now."
    from tse_repro.readings import CLAIMS_BLOCK, readme_with_claims
    text = (ROOT / "README.md").read_text()
    blocks = [m["profile"] for m in CLAIMS_BLOCK.finditer(text)]
    assert blocks, "the README holds no generated claims block"
    assert all((ROOT / "profiles" / f"{p}.yaml").exists() for p in blocks), f"a claims block names no profile of profiles/: {blocks}"
    assert readme_with_claims(text, ROOT / "results") == text, f"the README's claims are out of date: run make report PROFILE={blocks[0]}"
