"""Shared pytest fixtures: the project root and the real shared data (skip or fail when it is missing)."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def shared_data():
    "The folder in $TSE_DATA; skipped when absent unless TSE_REQUIRE_DATA=1 (CI), where absence fails."
    path = os.environ.get("TSE_DATA")
    if path and Path(path, "DATA.md").exists():
        return Path(path)
    reason = f"real data not found (TSE_DATA={path!r}); set TSE_DATA to the folder holding cifar10_test.npz"
    if os.environ.get("TSE_REQUIRE_DATA") == "1":
        pytest.fail(reason)
    pytest.skip(reason)
