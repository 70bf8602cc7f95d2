"""Every ```python block of README.md and docs/ runs as written, on the real data.

A page's blocks run in order in one namespace, as a reader would paste them one after another, in
a temporary working directory. An HTML comment on the line just above a fence changes that:

- ``<!-- docs-test: skip: REASON -->``: the block is not run (it needs something the tests do not
  have: a cluster, a checkpoint of your own, a side interpreter). The reason is required.
- ``<!-- docs-test: slow -->``: the block, and every later block of its page, runs only in the docs
  check (``SKDYNEMB_DOCS_SLOW=1``, see ``scripts/check-docs.sh``); the blocks above it run always.

Blocks that include a file (``--8<-- "examples/..."``) are the example scripts, run by
tests/test_examples.py.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
MARKER = re.compile(r"<!--\s*docs-test:\s*(skip|slow)\s*(?::\s*(.*?))?\s*-->\s*$")
SLOW = os.environ.get("SKDYNEMB_DOCS_SLOW") == "1"


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    code: str
    mark: str | None  # None, "skip" or "slow"
    reason: str | None


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        code = match.group(1)
        if code.lstrip().startswith("--8<--"):
            continue
        line = text.count("\n", 0, match.start()) + 1
        above = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(above)
        mark, reason = marker.groups() if marker else (None, None)
        found.append(Block(page.relative_to(REPO).as_posix(), line, code, mark, reason))
    return found


def fast_part(page_blocks: list[Block]) -> list[Block]:
    """The blocks before the page's first slow one."""
    out = []
    for block in page_blocks:
        if block.mark == "slow":
            break
        out.append(block)
    return out


ALL = {page.relative_to(REPO).as_posix(): blocks(page) for page in pages()}
WITH_CODE = [page for page, bs in ALL.items() if any(b.mark != "skip" for b in bs)]
WITH_SLOW = [page for page, bs in ALL.items() if any(b.mark == "slow" for b in bs)]


def run(page_blocks: list[Block], tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen CIF notes and the like, as a reader would see them
        for block in page_blocks:
            if block.mark == "skip":
                continue
            try:
                exec(compile(block.code, f"{block.page}:{block.line}", "exec"), namespace)  # noqa: S102
            except Exception as exc:
                raise AssertionError(f"the block at {block.page}:{block.line} failed: {exc!r}") from exc


def test_collector_sees_the_pages():
    assert "README.md" in WITH_CODE and "docs/index.md" in WITH_CODE
    assert sum(len(bs) for bs in ALL.values()) >= 15


@pytest.mark.parametrize("page", list(ALL))
def test_markers_are_well_formed(page):
    lines = (REPO / page).read_text().splitlines()
    markers = 0
    for line_no, line in enumerate(lines, 1):
        if line.lstrip().startswith("<!--") and "docs-test" in line:  # prose may name the syntax
            markers += 1
            marker = MARKER.search(line)
            assert marker, f"{page}:{line_no}: unreadable marker {line!r}"
            assert marker.group(1) != "skip" or marker.group(2), f"{page}:{line_no}: a skip needs a reason"
            assert lines[line_no:line_no + 1] == ["```python"], f"{page}:{line_no}: not right above a ```python fence"
    assert markers == sum(b.mark is not None for b in ALL[page])


@pytest.mark.parametrize("page", [p for p in WITH_CODE if any(b.mark != "skip" for b in fast_part(ALL[p]))])
def test_page_code_runs(page, shared, tmp_path, monkeypatch):
    """The fast blocks of a page (those above its first slow one), run in order."""
    run(fast_part(ALL[page]), tmp_path, monkeypatch)


@pytest.mark.skipif(not SLOW, reason="slow docs blocks run in the docs check: SKDYNEMB_DOCS_SLOW=1")
@pytest.mark.parametrize("page", WITH_SLOW)
def test_page_code_runs_slow(page, shared, alignn_ff_weights, tmp_path, monkeypatch):
    """Every block of a page that has slow ones, in order (the docs check)."""
    run(ALL[page], tmp_path, monkeypatch)
