"""Every notebook's own tests, one pytest case per notebook (cells flagged `#| slow` are skipped)."""
from pathlib import Path

import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook_cells

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "nbs").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[str(p.relative_to(ROOT / "nbs")) for p in NOTEBOOKS])
def test_notebook(notebook):
    cfg = get_config(path=ROOT)
    ok, seconds = run_notebook_cells(notebook, skip_flags=cfg.tst_flags.split(), basepath=cfg.config_path)
    assert ok, f"{notebook.name} failed (traceback above); open it in `make lab` to debug"
