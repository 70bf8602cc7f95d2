"""The documentation site builds with warnings as errors, and its code snippets match the API."""

from __future__ import annotations

import ast
import html
import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
BASH_BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)


def python_blocks():
    """(page, code) of every ```python block written in the docs (included example files aside)."""
    for page in sorted(DOCS.rglob("*.md")):
        for code in PYTHON_BLOCK.findall(page.read_text()):
            if not code.lstrip().startswith("--8<--"):
                yield page.relative_to(DOCS), code


def test_docs_have_python_snippets():
    assert len(list(python_blocks())) >= 10


@pytest.mark.parametrize("page,code", list(python_blocks()), ids=lambda v: str(v)[:40])
def test_snippet_compiles_and_imports_resolve(page, code):
    tree = ast.parse(code, filename=str(page))  # a SyntaxError names the page
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("skdynemb"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{page}: {node.module} has no {alias.name}"


def cli_commands():
    """(page, argv) of every ``skdynemb ...`` command line in the docs' ```bash blocks."""
    for page in sorted(DOCS.rglob("*.md")):
        for block in BASH_BLOCK.findall(page.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                if words[:1] == ["skdynemb"]:
                    yield page.relative_to(DOCS), words[1:]


def test_docs_show_cli_commands():
    assert {argv[0] for _, argv in cli_commands()} >= {"extract", "backbones", "pretrain"}


@pytest.mark.parametrize("page,argv", list(cli_commands()), ids=lambda v: str(v)[:50])
def test_cli_command_in_docs_parses(page, argv):
    from skdynemb.cli import build_parser

    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on an unknown command or option
        pytest.fail(f"{page}: `skdynemb {' '.join(argv)}` is not a valid command line (exit {exc.code})")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # parent package missing
        return False


def test_mkdocs_build_strict_from_another_directory(tmp_path):
    missing = [m for m in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python") if not _installed(m)]
    if missing:
        pytest.skip(f"docs toolchain not installed ({', '.join(missing)}); pip install -e '.[dev]'")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"), "-d", str(site)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,  # not the repository root
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"

    # the API pages were generated from the docstrings, not left as directives
    models = (site / "api" / "models" / "index.html").read_text()
    assert "RoostRegressor" in models and "max_epochs" in models and "return_std" in models
    transformers = (site / "api" / "transformers" / "index.html").read_text()
    assert "DynamicEmbeddingTransformer" in transformers and "compound_features" in transformers
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert "::: skdynemb" not in text, f"{page}: unrendered mkdocstrings directive"
        assert "--8<--" not in text, f"{page}: unresolved snippet include"
        assert not re.search(r":(class|func|meth|data|mod):`", text), f"{page}: raw Sphinx role"
        assert "&lt;autoref" not in text, f"{page}: cross-reference markup shown as text"

    # the user-facing pages exist; the results page shows the committed tables and plots
    for page in ("installation", "gpu", "results", "faq", "citing", "changelog", "paper-comparison",
                 "tutorials/persistence"):
        assert (site / page / "index.html").is_file(), f"no {page} page"
    # the notebook is rendered with its committed outputs
    rendered = (site / "notebooks" / "static_vs_dynamic" / "index.html").read_text()
    notebook = html.unescape(re.sub(r"<[^>]+>", "", rendered))
    assert "test MAE (eV/atom)" in notebook and "dynamic cgcnn-mp-eform" in notebook
    installation = (site / "installation" / "index.html").read_text()
    assert "download.pytorch.org/whl/cpu" in installation and "skdynemb[chgnet]" in installation
    results = (site / "results" / "index.html").read_text()
    images = re.findall(r'<img[^>]*src="\.\./([^"]+\.png)"', results)
    committed = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "benchmarks" / "results").rglob("*.png"))
    assert sorted(images) == committed
    assert all((site / image).is_file() for image in images)
    assert "Table 2: Roost with static vs dynamic element embeddings" in results and results.count("<table>") >= 10
    # typed numpydoc entries render their type as written (no type guessing from prose)
    roost = html.unescape(re.sub(r"<[^>]+>", " ", models))
    assert re.search(r"batch_size\s+int\s+Compounds per batch", roost), "batch_size entry not typed"
    assert re.search(r"history_\s+list of skorch.History", roost)

    # the examples page embeds the example scripts themselves
    examples = html.unescape(re.sub(r"<[^>]+>", "", (site / "examples" / "index.html").read_text()))
    for script in sorted((REPO / "examples").glob("*.py")):
        first_line = script.read_text().splitlines()[0]
        assert first_line in examples, f"{script.name} is not on the examples page"


def test_notebooks_are_committed_executed_and_hold_no_data():
    """Every docs notebook has run top to bottom without error (scripts/check-docs.sh --refresh), and
    its outputs are summaries: no long tables of values, no paths of the machine that ran it."""
    import nbformat

    notebooks = sorted((DOCS / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        notebook = nbformat.read(path, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert code and all(cell.execution_count for cell in code), f"{path.name}: not executed"
        assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), f"{path.name}: out of order"
        for cell in code:
            for out in cell.outputs:
                assert out.output_type != "error", f"{path.name}: {out.get('ename')}"
                text = out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
                assert len(text.splitlines()) <= 20, f"{path.name}: an output of {len(text.splitlines())} lines"
                assert "/work/" not in text and "/home/" not in text and "shared/data" not in text, path.name


@pytest.mark.parametrize("module", ["skdynemb.static_tables", "skdynemb.citations", "skdynemb.transformers.static",
                                    "skdynemb.models.roost", "skdynemb.datasets._core"])
def test_docstring_examples_run(module):
    import doctest

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
