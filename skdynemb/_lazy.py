"""Packages whose public names are imported on first use (so that importing them stays light)."""

from importlib import import_module


def lazy_exports(package: str, exports: dict[str, str]):
    """``(__all__, __getattr__, __dir__)`` for ``package``: each name of ``exports`` is imported from
    its module (the value) when first accessed."""
    names = sorted(exports)

    def __getattr__(name):
        if name in exports:
            return getattr(import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return names

    return names, __getattr__, __dir__
