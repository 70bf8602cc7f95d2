"""MkDocs hook (mkdocs.yml ``hooks:``): publish the committed benchmark plots with the site.

The Results page links ``benchmarks/results/**.png``, which lie outside ``docs/``; this hook adds
them to the site's files under the same paths, from wherever ``mkdocs`` is run.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parents[2]


def on_files(files, config):
    for png in sorted((REPO / "benchmarks" / "results").rglob("*.png")):
        files.append(File.generated(config, png.relative_to(REPO).as_posix(), abs_src_path=str(png)))
    return files
