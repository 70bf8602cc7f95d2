"""Official ALIGNN model names and where their weights come from.

* ALIGNN-FF (``alignn_atomwise``) checkpoints of the PyPI wheel ``alignn==2023.6.20``
  (:data:`~skdynemb.backbones.alignn.fetch.FF_CHECKPOINTS`): ``alignnff_wt01``, ``alignnff_wt1``,
  ``alignnff_wt10``; sha256-pinned, offline once fetched.
* Plain ALIGNN figshare zips (:data:`OFFICIAL_MODELS`, the names of ``alignn.pretrained``), all
  trained on the default graph (k-nearest, 12 neighbours, 8 Å) with CGCNN atom features.
"""

from __future__ import annotations

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


def official_names() -> list[str]:
    """Every name :func:`resolve` accepts."""
    return sorted([*FF_CHECKPOINTS, *OFFICIAL_MODELS])


def resolve(name: str) -> tuple[Path, dict[str, str] | None]:
    """(local checkpoint path, sha256 pins of its files or None) of official model ``name``,
    fetched into the cache on first use."""
    if name in FF_CHECKPOINTS:
        return fetch_ff(name), FF_CHECKPOINTS[name]
    if name in OFFICIAL_MODELS:
        return fetch_url(name, OFFICIAL_MODELS[name]), None
    raise ValueError(f"unknown ALIGNN model {name!r}; official names: {official_names()}")
