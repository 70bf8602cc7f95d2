"""Settings of a paper-benchmark run: the dataclass, its presets, and the command line that built it."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from skdynemb.static_tables import TABLES

REPO = Path(__file__).resolve().parents[2]
#: the embedding cache (git-ignored); fit results live in the ledger, never here
DEFAULT_WORK = REPO / "benchmarks" / "_work"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "paper"
DEFAULT_LEDGER = REPO / "benchmarks" / "results" / "ledger"

#: Roost's own output network (RoostRegressor's default ``out_hidden``)
ROOST_OUT_HIDDEN = (1024, 512, 256, 128, 64)


@dataclass(frozen=True)
class Settings:
    """Everything that determines a table (units: epochs, samples).

    ``max_train`` caps each training set by a seeded subsample (None: all); ``max_eval`` caps the
    validation and test sets the same way; ``max_samples`` keeps that many seeded entries of a
    property before splitting (smoke runs); ``mp_subsample`` draws that many seeded entries from the
    36,737-entry MP formation-energy file before splitting. ``select_seeds`` is how many of
    ``seeds`` choose the best static table / the tuned stage on the validation split.
    ``early_stopping`` gives Roost the validation split for early stopping (``patience`` epochs
    without a better validation loss; the best epoch is restored), with ``epochs`` as the limit.
    ``n_jobs`` is the number of fits run in parallel (explicit; nothing is guessed from the machine).
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
    early_stopping: bool = False
    patience: int = 20
    backbone: str = "alignn-ff-wt10"  # the library default (alignn-ff), named by its checkpoint: ledger keys stay put
    weights: str | None = None
    mp_subsample: int | None = 1500
    split_seed: int = 0
    static: tuple[str, ...] = TABLES
    n_jobs: int = 1
    device: str = "cpu"
    full: bool = False
    work: str = str(DEFAULT_WORK)

    def roost_params(self) -> dict:
        """The settings a single Roost fit depends on (part of its ledger identity)."""
        keys = ("epochs", "batch_size", "out_hidden", "lr", "device")
        params = {k: getattr(self, k) for k in keys}
        params["out_hidden"] = list(self.out_hidden)
        if self.early_stopping:
            params |= {"early_stopping": "validation split", "patience": self.patience}
        return params

    def describe(self) -> str:
        """One line naming the settings, written above every table."""
        cap = "all" if self.max_train is None else f"<= {self.max_train} (seeded subsample)"
        stop = f", early stopping on the validation split (patience {self.patience})" if self.early_stopping else ""
        return (
            f"Roost {self.epochs} epochs{stop}, batch {self.batch_size}, lr {self.lr}, output network "
            f"{'Roost default ' if self.out_hidden == ROOST_OUT_HIDDEN else ''}{self.out_hidden}; "
            f"training set {cap}; seeds {list(self.seeds)}; backbone {self.backbone}"
            + ("" if self.max_samples is None else f"; only {self.max_samples} seeded entries per property")
        )


#: paper-sized settings (GPU machine)
FULL = dict(epochs=250, batch_size=128, max_train=None, max_eval=None, seeds=(0, 1, 2, 3, 4), select_seeds=5,
            out_hidden=ROOST_OUT_HIDDEN, mp_subsample=None, device="cuda", full=True)
#: issue 13's "Table 2 at full available size": all training entries, Roost's default network, at most
#: 150 epochs with early stopping on the validation split, 3 seeds, the MP file subsampled to 5,000
FULL_SIZE = dict(epochs=150, early_stopping=True, patience=20, max_train=None, max_eval=None, seeds=(0, 1, 2),
                 select_seeds=3, out_hidden=ROOST_OUT_HIDDEN, mp_subsample=5000, full=True)
PRESETS = {"cpu": {}, "full": FULL, "full-size": FULL_SIZE}


def settings_from(args) -> Settings:
    """Settings of a parsed command line: ``--preset`` first, then every option given."""
    base = Settings(**PRESETS[getattr(args, "preset", None) or ("full" if getattr(args, "full", False) else "cpu")])
    names = ("epochs", "max_train", "max_eval", "max_samples", "mp_subsample", "n_jobs", "device", "work",
             "select_seeds", "backbone", "patience")
    over = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    if getattr(args, "weights", None):
        over["weights"] = str(Path(args.weights).resolve())
    if getattr(args, "seeds", None):
        over["seeds"] = tuple(args.seeds)
    if getattr(args, "static", None):
        over["static"] = tuple(args.static)
    if getattr(args, "early_stopping", False):
        over["early_stopping"] = True
    if getattr(args, "max_train", None) == 0:
        over["max_train"] = None
    s = replace(base, **over)
    if s.n_jobs < 1:
        raise ValueError(f"--n-jobs must be >= 1, got {s.n_jobs}")
    return replace(s, select_seeds=min(s.select_seeds, len(s.seeds)))


@functools.lru_cache(maxsize=1)
def git_rev() -> str:
    """Short hash of the revision checked out when first asked (``unknown`` outside git): the code a
    run started from, even when commits land while it runs."""
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> str:
    """One line naming the machine and the software that ran the benchmark."""
    return (f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, "
            f"torch {torch.__version__} ({torch.get_num_threads()} thread(s)), Python {platform.python_version()}, "
            f"git {git_rev()}").replace("  ", " ")
