"""Every public function, class and method documents its parameters and what it returns (numpydoc).

``numpydoc lint`` (run by scripts/test.sh) reads each file's syntax tree, so it checks what is
defined in public modules. This test imports the package and checks what a user reaches: the
public names of every public module (re-exports of private modules included, e.g.
``skdynemb.pretrain.pretrain_alignn``) and the public methods of public classes, inherited ones
included (``RoostRegressor.partial_fit`` is written in ``models/_common.py``). The checks and the
temporary file exclusions are those of ``[tool.numpydoc_validation]`` in pyproject.toml.
"""

import ast
import importlib
import inspect
import pkgutil
import re
import tomllib
import warnings
from pathlib import Path

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate", reason="numpydoc (the lint extra)")
from numpydoc.docscrape import ClassDoc  # noqa: E402

import skdynemb  # noqa: E402

REPO = Path(skdynemb.__file__).resolve().parents[1]
CONFIG = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["numpydoc_validation"]
CHECKS = set(CONFIG["checks"])
EXCLUDED_FILES = [re.compile(p) for p in CONFIG.get("exclude_files", [])]


def _ours(obj) -> bool:
    return getattr(obj, "__module__", "").startswith("skdynemb")


def public_objects() -> dict[str, object]:
    """Import path -> object, for every public function, class and method reachable by a user."""
    found = {}
    for info in pkgutil.walk_packages(skdynemb.__path__, "skdynemb."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        with warnings.catch_warnings():  # deprecated module aliases warn on import
            warnings.simplefilter("ignore", FutureWarning)
            module = importlib.import_module(info.name)
        names = getattr(module, "__all__", None)
        if names is None:
            names = [n for n, o in vars(module).items() if not n.startswith("_") and getattr(o, "__module__", None)
                     == module.__name__]
        for name in names:
            obj = getattr(module, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or not _ours(obj):
                continue
            found.setdefault(f"{obj.__module__}.{obj.__qualname__}", obj)
            if inspect.isclass(obj):
                for attr, member in inspect.getmembers(obj, inspect.isfunction):
                    if not attr.startswith("_") and _ours(member):
                        found.setdefault(f"{obj.__module__}.{obj.__qualname__}.{attr}", member)
    return found


def _source(obj) -> str:
    return str(Path(inspect.getsourcefile(inspect.unwrap(obj))).resolve().relative_to(REPO))


def _documented_attributes(cls) -> set[str]:
    """Names in the Attributes sections of ``cls`` and of its bases from skdynemb."""
    names = set()
    for klass in cls.__mro__:
        if _ours(klass) and klass.__doc__:
            names |= {n.strip() for a in ClassDoc(klass)["Attributes"] for n in a.name.split(",")}
    return names


def problems(name: str, obj) -> list[str]:
    """The configured numpydoc errors of one object (empty when it is documented)."""
    errors = [(code, message) for code, message in numpydoc_validate.validate(name)["errors"] if code in CHECKS]
    if inspect.isclass(obj):
        kept = []
        for code, message in errors:
            if code == "PR01":
                if "__init__" not in vars(obj):  # the constructor is a base class's, documented there
                    continue
                # a dataclass may document its fields (its constructor's parameters) as Attributes,
                # here or in a base class; private fields need no documentation
                missing = ast.literal_eval(message[message.index("{"):message.rindex("}") + 1])
                missing = {m for m in missing if not m.startswith("_")} - _documented_attributes(obj)
                if not missing:
                    continue
                message = f"Parameters {sorted(missing)} not documented"
            kept.append((code, message))
        errors = kept
    return [f"{_source(obj)}: {name}: {code} {message}" for code, message in errors]


def test_the_public_api_is_documented():
    objects = {name: obj for name, obj in public_objects().items()
               if not any(p.match(_source(obj)) for p in EXCLUDED_FILES)}
    assert len(objects) > 150  # the walk found the package (functions, classes and their methods)
    found = [line for name, obj in sorted(objects.items()) for line in problems(name, obj)]
    assert not found, "\n".join(found)
