"""The shape of the source notebooks, measured: how far each reads like fastcore's, one small definition
per exported cell with its test right under it. `python tests/notebook_shape.py [nbs/X.ipynb ...]` prints
the figures; tests/test_00_project.py holds the package to them."""
import ast
import json
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_CALL = re.compile(r"\bassert\b|\btest_\w*\(|\braises\(")


def code_cells(path: Path) -> list[str]:
    "The sources of a notebook's code cells, in order."
    cells = json.loads(Path(path).read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def is_exported(source: str) -> bool:
    return bool(re.match(r"\s*#\|\s*export", source))


def is_test(source: str) -> bool:
    return not is_exported(source) and bool(TEST_CALL.search(source))


def imports_only(source: str) -> bool:
    "A module's import cell: it defines nothing, so no test follows it."
    nodes = ast.parse(source).body
    return all(isinstance(node, (ast.Import, ast.ImportFrom, ast.With)) for node in nodes)


def definitions(source: str) -> int:
    "Top-level functions and classes a cell defines."
    nodes = ast.parse(source).body
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return sum(isinstance(node, kinds) for node in nodes)


def exported_cells(paths) -> list[dict]:
    "Each exported cell's (imports aside) non-blank lines, definitions, and whether a test cell follows it."
    cells = []
    for path in paths:
        sources = code_cells(path)
        for i, source in enumerate(sources):
            if not is_exported(source) or imports_only(source):
                continue
            body = [line for line in source.splitlines()[1:] if line.strip()]
            tested = i + 1 < len(sources) and is_test(sources[i + 1])
            cells.append(dict(notebook=Path(path).name, lines=len(body),
                              definitions=definitions(source), tested=tested))
    return cells


def shape(paths=None) -> dict:
    "The figures for `paths` (default: every notebook in nbs/, papermill's excluded)."
    cells = exported_cells(paths or sorted((ROOT / "nbs").glob("*.ipynb")))
    lines = [c["lines"] for c in cells]
    return dict(exported_cells=len(cells), median_lines=statistics.median(lines),
                at_most_10_lines=sum(n <= 10 for n in lines), longest=max(lines),
                two_or_more_definitions=sum(c["definitions"] >= 2 for c in cells),
                followed_by_test=round(sum(c["tested"] for c in cells) / len(cells), 3))


if __name__ == "__main__":
    print(shape([Path(p) for p in sys.argv[1:]] or None))
