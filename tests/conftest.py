"""Shared pytest fixtures: the project root and the real shared data (skip or fail when it is missing)."""
import os
import signal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A test run started in the background by a non-interactive shell (`make test &`, nohup in a script) inherits SIGINT
# ignored, and so would every process the tests start: Python leaves an ignored SIGINT ignored, so the Ctrl-C tests
# (test_ctrl_c, test_reference_is_replaced_whole_or_not_at_all) would see their signal dropped and the run finish.
# A handler here is reset to the default on exec, so the tests' processes get Ctrl-C as in a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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


LONGEST = ("test_30_readme.py::test_readme_commands_run_as_written[sweep]", "test_40_paper_smoke.py::test_paper_profile_smoke",
           "test_70_reproduce.py::test_tiny_profile_end_to_end", "test_22_sweep_state.py::test_reference_is_replaced")


def pytest_collection_modifyitems(items):
    "The longest tests first, so that `make test`'s workers (pytest-xdist) share the rest and finish together."
    items.sort(key=lambda item: next((i for i, name in enumerate(LONGEST) if name in item.nodeid), len(LONGEST)))
