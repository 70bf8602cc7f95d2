"""Optional dependencies: which extra installs a missing module, and the error that says so."""

from __future__ import annotations

from contextlib import contextmanager
from importlib import import_module
from types import ModuleType

#: top-level module -> the extra of ``pip install "skdynemb[EXTRA]"`` that installs it
EXTRAS = {
    "chgnet": "chgnet",
    "sevenn": "sevenn",
    "flaml": "automl",
    "lightgbm": "automl",
    "xgboost": "automl",
    "pyarrow": "parquet",
    "elementembeddings": "mat2vec",
    "dask": "dask",
    "distributed": "dask",
}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""

    def __init__(self, module: str, extra: str, feature: str):
        self.extra = extra
        super().__init__(
            f"{feature} needs the optional package {module!r}, which is not installed; "
            f'install it with: pip install "skdynemb[{extra}]"',
            name=module,
        )


@contextmanager
def needs_extra(feature: str):
    """Turn a ``ModuleNotFoundError`` of an optional package raised in the body into
    :class:`MissingExtraError` naming ``feature`` and the extra; other errors pass through.

    Parameters
    ----------
    feature : str
        What the body provides, e.g. ``"the 'chgnet' backbone"``.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in EXTRAS:
            raise
        raise MissingExtraError(top, EXTRAS[top], feature) from exc


def import_optional(module: str, feature: str) -> ModuleType:
    """Import ``module`` (an optional dependency), or raise :class:`MissingExtraError`.

    Parameters
    ----------
    module : str
        Dotted module name whose top-level package is a key of :data:`EXTRAS`.
    feature : str
        What needs it, for the message.

    Returns
    -------
    module : types.ModuleType
    """
    with needs_extra(feature):
        return import_module(module)
