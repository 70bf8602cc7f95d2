"""Property data of the paper benchmarks: the properties, loading and splitting them, and their embeddings.

Embeddings are extracted once per structure (all backbone stages at once, cached on disk under
``<work>/cache``) and stages are then sliced out by column; the std rows of
:mod:`.element_stats` are cached the same way under ``<work>/element-std``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from skdynemb import DynamicEmbeddingTransformer, StaticEmbeddingTransformer
from skdynemb.datasets import (
    load_jarvis_leaderboard,
    load_matbench_dielectric,
    load_mp_elasticity,
    load_mp_eform,
    train_val_test_split,
)
from skdynemb.embeddings import CompoundEmbedding, ElementEmbeddings
from skdynemb.static_tables import load_table
from skdynemb.structures import to_crystal

from .element_stats import side_by_side, stage_list, std_embeddings
from .settings import Settings

#: a property is flagged when at least this share of its values is exactly 0 (metal-dominated sets)
ZERO_FLAG = 0.5


@dataclass(frozen=True)
class PropSpec:
    """A property: ``source`` (jarvis / mp / mp_elasticity / matbench), its target column and unit."""

    source: str
    target: str
    unit: str


JARVIS_UNITS = {
    "formation_energy_peratom": "eV/atom", "optb88vdw_bandgap": "eV", "mbj_bandgap": "eV", "ehull": "eV/atom",
    "bulk_modulus_kv": "GPa", "shear_modulus_gv": "GPa", "optb88vdw_total_energy": "eV/atom",
    "Tc_supercon": "K", "magmom_oszicar": "μB", "n_Seebeck": "μV/K", "n_powerfact": "μW/(mK²)",
    "avg_elec_mass": "m_e", "avg_hole_mass": "m_e", "max_efg": "V/m²", "spillage": "-", "encut": "eV",
    "kpoint_length_unit": "Å", "ph_heat_capacity": "J/(mol K)",
}
#: JARVIS leaderboard properties with >= ~250 entries in the local subset
JARVIS_PROPS = (
    "formation_energy_peratom", "optb88vdw_bandgap", "bulk_modulus_kv", "shear_modulus_gv", "epsx", "epsy",
    "epsz", "mepsx", "mepsy", "mepsz", "mbj_bandgap", "Tc_supercon", "ph_heat_capacity", "ehull",
    "magmom_oszicar", "optb88vdw_total_energy", "encut", "kpoint_length_unit", "avg_elec_mass",
    "avg_hole_mass", "n_Seebeck", "n_powerfact", "max_efg", "spillage",
)
PROPERTIES = {
    **{f"jarvis:{p}": PropSpec("jarvis", p, JARVIS_UNITS.get(p, "-")) for p in JARVIS_PROPS},
    "mp:band_gap": PropSpec("mp", "band_gap", "eV"),
    "mp:efermi": PropSpec("mp", "efermi", "eV"),
    "mp:total_magnetization": PropSpec("mp", "total_magnetization", "μB/cell"),
    "mp:K_VRH": PropSpec("mp_elasticity", "K_VRH", "GPa"),
    "mp:G_VRH": PropSpec("mp_elasticity", "G_VRH", "GPa"),
    "matbench:n": PropSpec("matbench", "n", "-"),
}
#: the CPU default of Table 2, in run order (one metal-dominated property early, to show the flag)
CPU_PROPS = (
    "jarvis:formation_energy_peratom", "jarvis:bulk_modulus_kv", "mp:band_gap", "matbench:n",
    "mp:K_VRH", "jarvis:shear_modulus_gv", "jarvis:epsx", "jarvis:optb88vdw_bandgap", "jarvis:n_Seebeck",
    "jarvis:Tc_supercon", "mp:G_VRH", "mp:efermi", "mp:total_magnetization",
)


@dataclass
class PropData:
    """One property ready for fitting: structures, compositions, targets and a (train, val, test) split.

    ``subset`` names the sample set when it is not the property's whole set (e.g. "without
    polymorphs", "fold 2"); it is part of the property's ledger identity.
    """

    key: str
    spec: PropSpec
    ids: np.ndarray
    structures: list
    compositions: list
    y: np.ndarray
    split: tuple[np.ndarray, np.ndarray, np.ndarray]
    split_name: str
    n_dropped: int = 0
    subset: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def zero_share(self) -> float:
        """Share of targets exactly 0."""
        return float(np.mean(self.y == 0))

    @property
    def flag(self) -> str:
        """``"NN% zeros"`` for metal-dominated sets (see :data:`ZERO_FLAG`), else empty."""
        z = self.zero_share
        return f"{z:.0%} zeros" if z >= ZERO_FLAG else ""

    def sizes(self) -> str:
        """``"train/val/test"`` sizes."""
        return "/".join(str(len(s)) for s in self.split)

    def mean_baseline(self) -> float:
        """Test MAE of predicting the training mean (target unit)."""
        tr, _, te = self.split
        return float(np.mean(np.abs(self.y[te] - self.y[tr].mean())))

    def with_split(self, split, split_name: str, subset: str) -> "PropData":
        """The same samples with another (train, val, test) split."""
        return PropData(self.key, self.spec, self.ids, self.structures, self.compositions, self.y,
                        tuple(np.asarray(s, dtype=np.int64) for s in split), split_name, self.n_dropped, subset)


_DATASETS: dict = {}


def dataset(source: str, settings: Settings):
    """The dataset of ``source`` (memoised per process)."""
    key = (source, settings.mp_subsample, settings.split_seed)
    if key not in _DATASETS:
        if source == "jarvis":
            _DATASETS[key] = load_jarvis_leaderboard()
        elif source == "mp":
            _DATASETS[key] = load_mp_eform(sample=settings.mp_subsample, random_state=settings.split_seed) \
                if settings.mp_subsample else load_mp_eform()
        elif source == "mp_elasticity":
            _DATASETS[key] = load_mp_elasticity()
        elif source == "matbench":
            _DATASETS[key] = load_matbench_dielectric()
        else:
            raise ValueError(f"unknown source {source!r}")
    return _DATASETS[key]


def covered(structures, compositions, settings: Settings, backbone=None) -> np.ndarray:
    """Mask of samples whose elements are in every static table of ``settings`` and in the backbone."""
    tables = [set(load_table(t)[0]) for t in settings.static]
    ok = np.array([all(all(el.symbol in t for el in comp.elements) for t in tables) for comp in compositions])
    if backbone is not None:
        for i in np.flatnonzero(ok):
            try:
                backbone.check_elements(to_crystal(structures[i]), int(i))
            except ValueError:
                ok[i] = False
    return ok


def subsample(idx: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    """At most ``cap`` of ``idx`` (a seeded draw, sorted); all of them when ``cap`` is None."""
    if cap is None or len(idx) <= cap:
        return idx
    return np.sort(np.random.default_rng(seed).choice(idx, cap, replace=False))


def holdout(idx: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``idx`` split into (rest, held out): a seeded ``share`` of it held out (at least one), both sorted."""
    if not 0 < share < 1:
        raise ValueError(f"the held-out share must lie strictly between 0 and 1, got {share}")
    if len(idx) < 2:
        raise ValueError(f"cannot hold out a share of {len(idx)} sample(s)")
    order = np.random.default_rng(seed).permutation(np.asarray(idx, dtype=np.int64))
    n_out = max(1, int(round(share * len(order))))
    return np.sort(order[n_out:]), np.sort(order[:n_out])


def load_property(key: str, settings: Settings, indices: np.ndarray | None = None, subset: str = "") -> PropData:
    """Property ``key`` (see :data:`PROPERTIES`): official JARVIS split, else a seeded 80:10:10 split.

    Samples with an element missing from a static table or the backbone are left out (counted in
    ``n_dropped``) so that every embedding sees the same samples. ``indices`` (into the property's
    entries, before filtering) restricts the set first, e.g. to drop polymorphs; ``subset`` names it.
    """
    spec = PROPERTIES[key]
    task = dataset(spec.source, settings).task(spec.target, missing="drop")
    rows = np.arange(len(task)) if indices is None else np.asarray(indices)
    rows = subsample(rows, settings.max_samples, settings.split_seed)
    structures = [task.structures[int(i)] for i in rows]
    comps = [s.composition for s in structures]
    ok = covered(structures, comps, settings, backbone_for(settings))
    keep = rows[ok]
    structures = [s for s, k in zip(structures, ok) if k]
    comps = [c for c, k in zip(comps, ok) if k]
    y = task.y[keep]
    if spec.source == "jarvis" and indices is None:
        labels = task.split[keep]
        split = tuple(np.flatnonzero(labels == part) for part in ("train", "val", "test"))
        split_name = "official JARVIS leaderboard train/val/test"
    else:
        split = train_val_test_split(len(keep), random_state=settings.split_seed)
        split_name = f"seeded 80:10:10 (split seed {settings.split_seed})"
    tr, va, te = split
    split = (subsample(tr, settings.max_train, settings.split_seed),
             subsample(va, settings.max_eval, settings.split_seed + 1),
             subsample(te, settings.max_eval, settings.split_seed + 2))
    return PropData(key, spec, task.ids[keep], structures, comps, y, split, split_name, int((~ok).sum()), subset)


# ----------------------------------------------------------------------------- embeddings
_TRANSFORMERS: dict = {}


def dynamic_transformer(settings: Settings) -> DynamicEmbeddingTransformer:
    """A fitted all-stages transformer caching per-structure results under ``<work>/cache``."""
    key = (settings.backbone, settings.weights, settings.work, settings.device)
    if key not in _TRANSFORMERS:
        _TRANSFORMERS[key] = DynamicEmbeddingTransformer(
            settings.backbone, weights=settings.weights, stage="all", device=settings.device,
            memory=str(Path(settings.work) / "cache"), progress=False,
        ).fit()
    return _TRANSFORMERS[key]


def backbone_for(settings: Settings):
    """The loaded backbone of ``settings``."""
    return dynamic_transformer(settings).backbone_


def stage_options(settings: Settings) -> list[str]:
    """Stage names of the backbone, then ``"all"``."""
    return [*backbone_for(settings).stage_names, "all"]


def last_stage(settings: Settings) -> str:
    """Name of the backbone's last stage."""
    return backbone_for(settings).stage_names[-1]


def select_stage(E: ElementEmbeddings, stage: str, prefix: str = "") -> ElementEmbeddings:
    """The columns of one stage (by name prefix ``<prefix><stage>_``) or everything for ``"all"``."""
    if stage == "all":
        return E
    cols = np.array([str(n).startswith(f"{prefix}{stage}_") for n in E.feature_names])
    if not cols.any():
        raise ValueError(f"no stage {stage!r} among the features")
    return ElementEmbeddings(
        [CompoundEmbedding(c.elements, c.fractions, np.ascontiguousarray(c.features[:, cols]), c.id) for c in E],
        E.feature_names[cols],
    )


def select_stages(E: ElementEmbeddings, what: str, settings: Settings, prefix: str = "") -> ElementEmbeddings:
    """The columns of the stages ``<a>+<b>...`` (or ``all``) of ``E``, side by side in that order."""
    stages = stage_list(what, backbone_for(settings).stage_names)
    return side_by_side([select_stage(E, stage, prefix) for stage in stages])


def embeddings(data: PropData, name: str, settings: Settings, cache: dict):
    """Inputs ``name`` of ``data`` (memoised in ``cache``, which belongs to one ``data``).

    ``static:<table>`` and ``dynamic:<stage|all>`` are per-element embeddings (for Roost);
    ``dynamic:<a>+<b>`` stages side by side, ``dynamic@<backbone>:<stages>`` those of another backbone
    (its shipped weights), ``union:<name>|<name>...`` any of these side by side,
    ``dynamic-std:<stages>`` the std of each element's
    atom vectors and ``dynamic-meanstd:<stages>`` mean then std rows (:mod:`.element_stats`);
    ``mean:<static or dynamic name>`` their atom-averaged vectors; ``ElementFraction`` and
    ``Magpie`` composition features (float32 arrays); ``formula`` the formulas (object array, CrabNet's input).
    """
    if name not in cache:
        kind, _, what = name.partition(":")
        if kind == "static":
            cache[name] = StaticEmbeddingTransformer(embedding=what).fit().transform(data.compositions)
        elif kind == "union":  # inputs side by side: union:<name>|<name>...
            cache[name] = side_by_side([embeddings(data, part, settings, cache) for part in what.split("|")])
        elif kind.startswith("dynamic@"):  # another backbone's stages: dynamic@<backbone>:<stages>
            other = replace(settings, backbone=kind.split("@", 1)[1], weights=None)
            cache[name] = embeddings(data, f"dynamic:{what}", other, cache.setdefault(f"@{other.backbone}", {}))
        elif kind == "dynamic":
            if "dynamic:all" not in cache:
                cache["dynamic:all"] = dynamic_transformer(settings).transform(data.structures)
            cache[name] = select_stages(cache["dynamic:all"], what, settings)
        elif kind == "dynamic-std":
            if "dynamic-std:all" not in cache:
                cache["dynamic-std:all"] = std_embeddings(data.structures, dynamic_transformer(settings), settings.work)
            cache[name] = select_stages(cache["dynamic-std:all"], what, settings, prefix="std:")
        elif kind == "dynamic-meanstd":
            cache[name] = side_by_side([embeddings(data, f"dynamic:{what}", settings, cache),
                                        embeddings(data, f"dynamic-std:{what}", settings, cache)])
        elif kind == "mean":
            cache[name] = embeddings(data, what, settings, cache).mean()
        elif name == "formula":
            cache[name] = np.array([c.formula for c in data.compositions], dtype=object)
        elif name in ("ElementFraction", "Magpie"):
            from skdynemb import ElementFractionTransformer, MagpieTransformer

            cls = ElementFractionTransformer if name == "ElementFraction" else MagpieTransformer
            cache[name] = np.asarray(cls().fit().transform(data.compositions), np.float32)
        else:
            raise ValueError(f"unknown inputs {name!r}")
    return cache[name]
