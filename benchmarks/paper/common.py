"""Shared harness of the paper benchmarks: settings, property data, embeddings, Roost fits, tables.

Embeddings are extracted once per structure (all backbone stages at once, cached on disk under
``<work>/cache``) and stages are then sliced out by column; each Roost fit's result is stored under
``<work>/fits`` keyed by everything that determines it, so tables share fits and re-running a table
only trains what is missing. Same settings + seeds -> the same tables (Roost is bitwise
deterministic on CPU for a given ``random_state``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from joblib import Parallel, delayed

from skdynemb import DynamicEmbeddingTransformer, RoostRegressor, StaticEmbeddingTransformer
from skdynemb.datasets import (
    load_jarvis_leaderboard,
    load_matbench_dielectric,
    load_mp_elasticity,
    load_mp_eform,
    train_val_test_split,
)
from skdynemb.embeddings import ElementEmbeddings
from skdynemb.static_tables import TABLES, load_table

REPO = Path(__file__).resolve().parents[2]
DEFAULT_WORK = REPO / "benchmarks" / "_work"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "paper"

#: a property is flagged when at least this share of its values is exactly 0 (metal-dominated sets)
ZERO_FLAG = 0.5
#: differences below this share (%) of the reference MAE count as ties (seed noise at these sizes)
MIN_PCT = 5.0
#: the command-line arguments of the current run (set by ``run.main``), written above every table
COMMAND: list[str] = []


@dataclass(frozen=True)
class Settings:
    """Everything that determines a table (units: epochs, samples, seconds).

    ``max_train`` caps each training set by a seeded subsample (None: all); ``max_eval`` caps the
    validation and test sets the same way; ``mp_subsample`` draws that many seeded entries from the
    36,737-entry MP formation-energy file before splitting. ``select_seeds`` is how many of
    ``seeds`` are used to choose the best static table / the tuned stage on the validation split.
    """

    epochs: int = 30
    max_train: int | None = 400
    max_eval: int | None = None
    max_samples: int | None = None
    seeds: tuple[int, ...] = (0, 1, 2)
    select_seeds: int = 1
    batch_size: int = 32
    out_hidden: tuple[int, ...] = (256, 128, 64)
    lr: float = 3e-4
    backbone: str = "cgcnn-mp-eform"
    weights: str | None = None
    mp_subsample: int | None = 1500
    split_seed: int = 0
    static: tuple[str, ...] = TABLES
    n_jobs: int = 1
    device: str = "cpu"
    full: bool = False
    work: str = str(DEFAULT_WORK)

    def fit_key(self) -> dict:
        """The settings a single Roost fit depends on."""
        return {k: getattr(self, k) for k in ("epochs", "batch_size", "out_hidden", "lr", "device")}

    def describe(self) -> str:
        cap = "all" if self.max_train is None else f"<= {self.max_train} (seeded subsample)"
        return (
            f"Roost {self.epochs} epochs, batch {self.batch_size}, lr {self.lr}, output network "
            f"{'Roost default ' if self.out_hidden == ROOST_OUT_HIDDEN else ''}{self.out_hidden}; "
            f"training set {cap}; seeds {list(self.seeds)}; backbone {self.backbone}"
            + ("" if self.max_samples is None else f"; only {self.max_samples} seeded entries per property")
        )


ROOST_OUT_HIDDEN = (1024, 512, 256, 128, 64)
FULL = dict(epochs=250, batch_size=128, max_train=None, max_eval=None, seeds=(0, 1, 2, 3, 4), select_seeds=5,
            out_hidden=ROOST_OUT_HIDDEN, mp_subsample=None, device="cuda", full=True)


def machine() -> str:
    """One line naming the machine and the software that ran the benchmark."""
    return (f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, "
            f"torch {torch.__version__} ({torch.get_num_threads()} thread(s)), Python {platform.python_version()}, "
            f"git {git_rev()}").replace("  ", " ")


def git_rev() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ----------------------------------------------------------------------------- properties
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
    """One property ready for fitting: structures, compositions, targets and a (train, val, test) split."""

    key: str
    spec: PropSpec
    ids: np.ndarray
    structures: list
    compositions: list
    y: np.ndarray
    split: tuple[np.ndarray, np.ndarray, np.ndarray]
    split_name: str
    n_dropped: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def zero_share(self) -> float:
        return float(np.mean(self.y == 0))

    @property
    def flag(self) -> str:
        z = self.zero_share
        return f"{z:.0%} zeros" if z >= ZERO_FLAG else ""

    def sizes(self) -> str:
        return "/".join(str(len(s)) for s in self.split)


_DATASETS: dict = {}


def _dataset(source: str, settings: Settings):
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
                backbone.check_elements(_crystal(structures[i]), int(i))
            except ValueError:
                ok[i] = False
    return ok


def _crystal(structure):
    from skdynemb.structures import to_crystal
    return to_crystal(structure)


def _cap(idx: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    if cap is None or len(idx) <= cap:
        return idx
    return np.sort(np.random.default_rng(seed).choice(idx, cap, replace=False))


def load_property(key: str, settings: Settings, indices: np.ndarray | None = None) -> PropData:
    """Property ``key`` (see :data:`PROPERTIES`): official JARVIS split, else a seeded 80:10:10 split.

    Samples with an element missing from a static table or the backbone are left out (counted in
    ``n_dropped``) so that every embedding sees the same samples. ``indices`` (into the property's
    entries, before filtering) restricts the set first, e.g. to drop polymorphs.
    """
    spec = PROPERTIES[key]
    task = _dataset(spec.source, settings).task(spec.target, missing="drop")
    rows = np.arange(len(task)) if indices is None else np.asarray(indices)
    rows = _cap(rows, settings.max_samples, settings.split_seed)
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
    split = (_cap(tr, settings.max_train, settings.split_seed), _cap(va, settings.max_eval, settings.split_seed + 1),
             _cap(te, settings.max_eval, settings.split_seed + 2))
    return PropData(key, spec, task.ids[keep], structures, comps, y, split, split_name, int((~ok).sum()))


# ----------------------------------------------------------------------------- embeddings
_BACKBONES: dict = {}


def dynamic_transformer(settings: Settings) -> DynamicEmbeddingTransformer:
    """A fitted all-stages transformer caching per-structure results under ``<work>/cache``."""
    key = (settings.backbone, settings.weights, settings.work)
    if key not in _BACKBONES:
        _BACKBONES[key] = DynamicEmbeddingTransformer(
            settings.backbone, weights=settings.weights, layer="all", device=settings.device,
            memory=str(Path(settings.work) / "cache"), progress=False,
        ).fit()
    return _BACKBONES[key]


def backbone_for(settings: Settings):
    return dynamic_transformer(settings).backbone_


def dynamic_all(data: PropData, settings: Settings) -> ElementEmbeddings:
    """All stages of the backbone for every structure of ``data`` (concatenated columns)."""
    return dynamic_transformer(settings).transform(data.structures)


def stage_options(settings: Settings) -> list[str]:
    """Stage names of the backbone, then ``"all"``."""
    return [*dynamic_transformer(settings).backbone_.stage_names, "all"]


def select_stage(E: ElementEmbeddings, stage: str) -> ElementEmbeddings:
    """The columns of one stage (by name prefix ``<stage>_``) or everything for ``"all"``."""
    if stage == "all":
        return E
    cols = np.array([str(n).startswith(f"{stage}_") for n in E.feature_names])
    if not cols.any():
        raise ValueError(f"no stage {stage!r} among the features")
    from skdynemb.embeddings import CompoundEmbedding
    return ElementEmbeddings(
        [CompoundEmbedding(c.elements, c.fractions, np.ascontiguousarray(c.features[:, cols]), c.id) for c in E],
        E.feature_names[cols],
    )


def static_embeddings(data: PropData, table: str) -> ElementEmbeddings:
    return StaticEmbeddingTransformer(embedding=table).fit().transform(data.compositions)


def embeddings(data: PropData, name: str, settings: Settings, cache: dict) -> ElementEmbeddings:
    """``static:<table>`` or ``dynamic:<stage|all>`` embeddings of ``data`` (memoised in ``cache``)."""
    if name not in cache:
        kind, what = name.split(":", 1)
        if kind == "static":
            cache[name] = static_embeddings(data, what)
        else:
            if "dynamic:all" not in cache:
                cache["dynamic:all"] = dynamic_all(data, settings)
            cache[name] = select_stage(cache["dynamic:all"], what)
    return cache[name]


# ----------------------------------------------------------------------------- fits
def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _index_digest(split) -> str:
    return hashlib.sha256(b"".join(np.asarray(s, np.int64).tobytes() + b"|" for s in split)).hexdigest()[:16]


def roost_fit(X, y, split, seed: int, settings: Settings) -> dict:
    """Train Roost on ``split[0]``; MAEs on validation and test, test predictions, epoch times (s)."""
    torch.set_num_threads(1)
    tr, va, te = split
    t0 = time.perf_counter()
    model = RoostRegressor(
        max_epochs=settings.epochs, batch_size=settings.batch_size, out_hidden=settings.out_hidden,
        lr=settings.lr, device=settings.device, random_state=seed,
    ).fit(X[tr], y[tr])
    fit_s = time.perf_counter() - t0
    p_va = model.predict(X[va]) if len(va) else np.array([])
    p_te = model.predict(X[te])
    return {
        "val_mae": float(np.mean(np.abs(p_va - y[va]))) if len(va) else float("nan"),
        "test_mae": float(np.mean(np.abs(p_te - y[te]))),
        "pred_test": [float(v) for v in p_te],
        "epoch_s": float(np.median([row["dur"] for row in model.nets_[0].history])),
        "fit_s": fit_s,
    }


class FitStore:
    """Results of Roost fits on disk (``<work>/fits/<key>.json``) so tables share and resume fits."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.folder = Path(settings.work) / "fits"
        self.folder.mkdir(parents=True, exist_ok=True)
        # weights given by path: their content is part of the key, so retrained weights retrain the fits
        self.weights_hash = None if settings.weights is None else backbone_for(settings).fingerprint()

    def key(self, data: PropData, emb: str, seed: int, tag: str = "") -> str:
        ident = {"prop": data.key, "emb": emb, "seed": seed, "tag": tag, "n": len(data.y),
                 "split": _index_digest(data.split), "y": hashlib.sha256(data.y.tobytes()).hexdigest()[:16],
                 "fit": self.settings.fit_key(), "backbone": self.settings.backbone, "weights": self.settings.weights}
        if self.weights_hash is not None:
            ident["weights_hash"] = self.weights_hash
        return _digest(ident)

    def run(self, data: PropData, jobs: list[tuple[str, int]], cache: dict, tag: str = "") -> dict:
        """Results of (embedding name, seed) jobs, training the missing ones (``n_jobs`` in parallel)."""
        out, todo = {}, []
        for emb, seed in jobs:
            path = self.folder / f"{self.key(data, emb, seed, tag)}.json"
            if path.exists():
                out[(emb, seed)] = json.loads(path.read_text())
            elif (emb, seed) not in todo:
                todo.append((emb, seed))
        if todo:
            Xs = {emb: embeddings(data, emb, self.settings, cache) for emb, _ in todo}
            n_jobs = effective_jobs(self.settings.n_jobs, len(todo))
            results = Parallel(n_jobs=n_jobs, return_as="generator")(
                delayed(roost_fit)(Xs[emb], data.y, data.split, seed, self.settings) for emb, seed in todo
            )
            for (emb, seed), res in zip(todo, results):  # stored as each fit ends
                (self.folder / f"{self.key(data, emb, seed, tag)}.json").write_text(json.dumps(res))
                out[(emb, seed)] = res
                log(f"  {data.key} {emb} seed {seed}: test MAE {res['test_mae']:.4g} ({res['fit_s']:.0f} s)")
        return out


def pretraining_running() -> bool:
    """True while another engineer's pretraining job runs (then we keep to one core)."""
    try:
        out = subprocess.run(["pgrep", "-f", "pretrain"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    mine = {str(os.getpid())}
    return any(pid and pid not in mine for pid in out.stdout.split())


def effective_jobs(n_jobs: int, n_tasks: int) -> int:
    """``n_jobs`` (0 = 2 unless a pretraining job is running, then 1), never above ``n_tasks``."""
    if n_jobs == 0:
        n_jobs = 1 if pretraining_running() else 2
    return max(1, min(n_jobs, n_tasks))


def mean_baseline(data: PropData) -> float:
    """Test MAE of predicting the training mean."""
    tr, _, te = data.split
    return float(np.mean(np.abs(data.y[te] - data.y[tr].mean())))


def seed_stats(values) -> tuple[float, float]:
    """Mean and sample std (ddof=1; 0 for one value)."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def verdict(dyn: list[float], ref: list[float], min_pct: float = MIN_PCT) -> str:
    """"win" / "loss" when the mean difference exceeds both the sum of the two seed stds and
    ``min_pct`` % of the reference mean (seed stds on one split understate the noise), else "tie"."""
    (m_d, s_d), (m_r, s_r) = seed_stats(dyn), seed_stats(ref)
    if len(dyn) < 2 or len(ref) < 2:
        return "n/a (1 seed)"
    margin = max(s_d + s_r, abs(m_r) * min_pct / 100)
    if m_r - m_d > margin:
        return "win"
    if m_d - m_r > margin:
        return "loss"
    return "tie"


# ----------------------------------------------------------------------------- output
def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def header(title: str, settings: Settings, extra: dict) -> dict:
    """Metadata written above every table."""
    return {
        "table": title,
        "command": "python -m benchmarks.paper.run " + " ".join(shlex.quote(str(a)) for a in COMMAND),
        "machine": machine(),
        "settings": settings.describe(),
        **extra,
    }


def fmt(mean: float, std: float, digits: int = 4) -> str:
    return f"{mean:.{digits}g} ± {std:.2g}"


def write_table(df: pd.DataFrame, name: str, meta: dict, out: Path, notes: list[str] = ()) -> Path:
    """``<out>/<name>.csv`` (``# key: value`` lines, then the table) and ``<out>/<name>.md``."""
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# {k}: {v}" for k, v in meta.items()] + [f"# note: {n}" for n in notes]
    (out / f"{name}.csv").write_text("\n".join(lines) + "\n" + df.to_csv(index=False))
    md = [f"## {meta['table']}", ""] + [f"- **{k}**: {v}" for k, v in meta.items() if k != "table"]
    md += [f"- {n}" for n in notes] + ["", df.to_markdown(index=False), ""]
    (out / f"{name}.md").write_text("\n".join(md))
    log(f"wrote {out / name}.csv/.md")
    return out / f"{name}.csv"


def settings_from(args) -> Settings:
    base = Settings(**FULL) if args.full else Settings()
    names = ("epochs", "max_train", "max_eval", "max_samples", "mp_subsample", "n_jobs", "device", "work",
             "select_seeds", "backbone")
    over = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    if getattr(args, "weights", None):
        over["weights"] = str(Path(args.weights).resolve())  # one spelling per file: shared fit-cache keys
    if getattr(args, "seeds", None):
        over["seeds"] = tuple(args.seeds)
    if getattr(args, "static", None):
        over["static"] = tuple(args.static)
    if getattr(args, "max_train", None) == 0:
        over["max_train"] = None
    s = replace(base, **over)
    s = replace(s, select_seeds=min(s.select_seeds, len(s.seeds)))
    return s
