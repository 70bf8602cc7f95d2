"""Renamed estimator parameters: the old name keeps working for one minor version, with a FutureWarning.

An estimator that renames a parameter keeps both as ``__init__`` parameters (so ``get_params``,
``clone`` and grid searches take either), the old one defaulting to :data:`NOT_GIVEN`, and resolves
them in ``fit`` with :func:`renamed_parameter`.
"""

from __future__ import annotations

import warnings

#: default of a renamed parameter's old name (``layer``, ``standardize``): "not given"
NOT_GIVEN = "deprecated"


def renamed_parameter(value, old_value, name: str, old_name: str, default):
    """The value of an estimator parameter that still accepts its name before 0.2.

    Parameters
    ----------
    value : object
        The parameter under its new name (e.g. ``stage``), as given.
    old_value : object
        The parameter under its old name (e.g. ``layer``); :data:`NOT_GIVEN` (its default) when
        not given.
    name, old_name : str
        The two names, for messages.
    default : object
        The default of ``value``: ``old_value`` is honoured only when ``value`` was left at it.

    Returns
    -------
    value : object
        ``old_value`` when it was given (with a FutureWarning), else ``value``.

    Raises
    ------
    ValueError
        Both names were given.
    """
    if isinstance(old_value, str) and old_value == NOT_GIVEN:
        return value
    if not (type(value) is type(default) and value == default):
        raise ValueError(
            f"{name}={value!r} and {old_name}={old_value!r} were both given; `{old_name}` was renamed "
            f"`{name}`: pass {name} only"
        )
    warnings.warn(
        f"`{old_name}` was renamed `{name}` in 0.2 and will be removed in 0.3; pass {name}=... (same values)",
        FutureWarning, stacklevel=3,
    )
    return old_value
