"""Official ALIGNN model names and where their weights come from.

Resolved in this order (one cache directory, :func:`~skdynemb.backbones.alignn.fetch.cache_dir`):

1. The ALIGNN-FF checkpoints of the PyPI wheel ``alignn==2023.6.20``
   (:data:`~skdynemb.backbones.alignn.fetch.FF_CHECKPOINTS`: ``alignnff_wt01``, ``alignnff_wt1``,
   ``alignnff_wt10``), sha256-pinned, offline once fetched.
2. The registries of the installed ``alignn`` package (2026.8.11 is a test dependency), read as
   data, never imported: the legacy figshare table of plain ALIGNN models
   (``alignn/ff/all_models_alignn.json``), the ALIGNN-FF table
   (``alignn/ff/all_models_alignn_atomwise.json``) and the ALIGNN2 registry
   (``ALIGNN2_MODELS`` in ``alignn/pretrained.py``). Models on a graph this package does not build
   (the radius graphs of ALIGNN2) are refused by name with the reason; the others are downloaded
   once and their ``config.json`` decides the rest (unsupported fields are refused by name).
3. Without ``alignn`` installed, :data:`OFFICIAL_MODELS`, the plain-ALIGNN names of ``alignn.pretrained``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
from functools import lru_cache
from pathlib import Path

from skdynemb.backbones.alignn.fetch import FF_CHECKPOINTS, fetch_ff, fetch_url

OFFICIAL_MODELS = {
    "mp_e_form_alignn": "https://ndownloader.figshare.com/files/31458811",
    "mp_gappbe_alignn": "https://ndownloader.figshare.com/files/31458814",
    "jv_formation_energy_peratom_alignn": "https://ndownloader.figshare.com/files/31458679",
    "jv_optb88vdw_total_energy_alignn": "https://ndownloader.figshare.com/files/31459642",
    "jv_optb88vdw_bandgap_alignn": "https://ndownloader.figshare.com/files/31459636",
    "jv_mbj_bandgap_alignn": "https://ndownloader.figshare.com/files/31458694",
    "jv_bulk_modulus_kv_alignn": "https://ndownloader.figshare.com/files/31458649",
    "jv_shear_modulus_gv_alignn": "https://ndownloader.figshare.com/files/31458724",
}


def _alignn_folder() -> Path | None:
    spec = importlib.util.find_spec("alignn")
    return Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None


def _alignn2_models(source: str) -> dict:
    """``ALIGNN2_MODELS`` of ``alignn/pretrained.py``, read as a literal (the module is not run)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "ALIGNN2_MODELS" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


@lru_cache(maxsize=1)
def registry() -> dict[str, tuple[str | None, str | None]]:
    """Official name -> (download URL or None, reason it is refused or None).

    Returns
    -------
    table : dict of str to tuple
        ``name -> (url, reason)``: the download address (None if unknown) and why the model is
        refused (None if it is supported).
    """
    table: dict[str, tuple[str | None, str | None]] = {}
    folder = _alignn_folder()
    if folder is not None:
        pretrained = folder / "pretrained.py"
        for name, meta in (_alignn2_models(pretrained.read_text()) if pretrained.is_file() else {}).items():
            graph = meta.get("graph")
            reason = None if graph == "knn" else (
                f"ALIGNN2 model on a {graph!r} graph (cutoff {meta.get('cutoff')} Å); "
                "only the k-nearest graph is built")
            table[name] = (meta.get("url"), reason)
        for file in ("all_models_alignn_atomwise.json", "all_models_alignn.json"):
            path = folder / "ff" / file
            if path.is_file():
                table.update({name: (url, None) for name, url in json.loads(path.read_text()).items()})
    table.update({name: (url, None) for name, url in OFFICIAL_MODELS.items() if name not in table})
    table.update({name: (None, None) for name in FF_CHECKPOINTS})
    return table


def official_names() -> list[str]:
    """Every official name :func:`resolve` knows (refused ones included, so they are refused by name).

    Returns
    -------
    names : list of str
        Sorted model names.
    """
    return sorted(registry())


def resolve(name: str) -> tuple[Path, dict[str, str] | None]:
    """(local checkpoint path, sha256 pins of its files or None) of official model ``name``,
    fetched into the cache on first use; raises ValueError for unknown or refused names.

    Parameters
    ----------
    name : str
        An official model name (see :func:`official_names`).

    Returns
    -------
    path : Path
        The checkpoint: an ALIGNN-FF folder or a downloaded zip.
    pins : dict of str to str or None
        File name -> expected sha256 for the ALIGNN-FF checkpoints, else None.

    Raises
    ------
    ValueError
        ``name`` is unknown or refused.
    """
    if name in FF_CHECKPOINTS:
        return fetch_ff(name), FF_CHECKPOINTS[name]
    url, reason = registry().get(name, (None, "unknown"))
    if reason == "unknown":
        raise ValueError(f"unknown ALIGNN model {name!r}; {len(registry())} official names, see official_names()")
    if reason is not None or url is None:
        raise ValueError(f"ALIGNN model {name!r} is not supported: {reason or 'no download address'}")
    return fetch_url(name, url), None
