"""Optional dependencies: a feature whose extra is missing says which extra installs it."""

import sys

import pytest

from skdynemb import DynamicEmbeddingTransformer
from skdynemb._optional import EXTRAS, MissingExtraError, import_optional, needs_extra
from skdynemb.backbones import load_backbone


def test_missing_chgnet_names_the_chgnet_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "chgnet", None)  # `import chgnet` now fails as if not installed
    monkeypatch.delitem(sys.modules, "skdynemb.backbones.chgnet", raising=False)
    with pytest.raises(MissingExtraError, match=r"the 'chgnet' backbone needs the optional package 'chgnet'.*"
                                                r'pip install "skdynemb\[chgnet\]"'):
        load_backbone("chgnet")
    with pytest.raises(ImportError, match=r"skdynemb\[chgnet\]"):
        DynamicEmbeddingTransformer(backbone="chgnet", device="cpu").fit()


@pytest.mark.parametrize("name", ["sevenn-0", "sevenn-mf-0"])
def test_missing_sevenn_names_the_sevenn_extra(monkeypatch, name):
    monkeypatch.setitem(sys.modules, "sevenn", None)  # `import sevenn` now fails as if not installed
    monkeypatch.delitem(sys.modules, "skdynemb.backbones.sevenn", raising=False)
    with pytest.raises(MissingExtraError, match=rf"the '{name}' backbone needs the optional package 'sevenn'.*"
                                                r'pip install "skdynemb\[sevenn\]"'):
        load_backbone(name)


def test_other_import_errors_pass_through(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_not_an_extra", None)
    with pytest.raises(ModuleNotFoundError) as info:
        with needs_extra("something"):
            import torch_not_an_extra  # noqa: F401
    assert not isinstance(info.value, MissingExtraError)


def test_every_extra_is_declared_in_pyproject():
    import tomllib
    from pathlib import Path

    meta = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    extras = meta["optional-dependencies"]
    for module, extra in EXTRAS.items():
        assert extra in extras, extra
        names = " ".join(extras[extra]).lower().replace("_", "-")
        assert module.replace("_", "-") in names, (module, extra)
    # the heavy packages are not core dependencies
    core = " ".join(meta["dependencies"]).lower()
    for heavy in ("chgnet", "sevenn", "flaml", "lightgbm", "xgboost", "pyarrow", "aviary", "elementembeddings", "dask"):
        assert heavy not in core, heavy
    assert import_optional("json", "anything").dumps([1]) == "[1]"


@pytest.mark.parametrize("store_imported", [False, True])
def test_streaming_without_pyarrow_names_the_parquet_extra(monkeypatch, store_imported):
    """``import skdynemb.streaming`` without pyarrow raises MissingExtraError naming the parquet
    extra, whether or not its part-file store was imported before pyarrow went missing."""
    import importlib

    import skdynemb.part_store  # noqa: F401

    for name in ("pyarrow", "pyarrow.parquet"):
        monkeypatch.setitem(sys.modules, name, None)  # `import pyarrow` now fails as if not installed
    monkeypatch.delitem(sys.modules, "skdynemb.streaming", raising=False)
    if not store_imported:
        monkeypatch.delitem(sys.modules, "skdynemb.part_store")
    with pytest.raises(MissingExtraError, match=r"needs the optional package 'pyarrow'.*"
                                                r'pip install "skdynemb\[parquet\]"') as info:
        importlib.import_module("skdynemb.streaming")
    assert info.value.extra == "parquet" and info.value.name == "pyarrow"
