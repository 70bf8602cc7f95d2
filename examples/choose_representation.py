"""Choose the element rows by data (stage x backbone x sources), then average seeds.

On the official JARVIS training split of ``formation_energy_peratom`` (eV/atom), a
``GridSearchCV`` with k-fold inner cross-validation compares ALIGNN-FF stages (one stage, all
stages concatenated), CGCNN's last stage and ALIGNN-FF's last stage with a static table's
columns appended (``ElementEmbeddingUnion``). Every dynamic transformer shares one ``memory=``
folder, so each structure goes through each backbone once; further stages, folds and the refit
read the cache. The chosen rows are then refit with a ``SeedEnsembleRegressor`` (the mean of
several Roost seeds, its spread an uncertainty) and, for comparison, the best three settings
are averaged (``VotingRegressor``). Everything is scored on the official test split.

Data: the JARVIS file of the data folder (``--data-dir DIR``, else ``$SKDYNEMB_DATA``, else
``../shared/data`` beside a clone of the repository) with the official leaderboard split; without
one, ``--online-sample`` random entries of JARVIS-DFT through jarvis-tools (a download, once),
split 80:10:10 with seed 0.

With the defaults (300 training structures, 3 folds, 5 settings, 60 epochs, 5 seeds) that is
27 Roost fits of ~10 s each on one CPU core (1 torch thread) plus ~10 s of extraction.

    python examples/choose_representation.py
    python examples/choose_representation.py --limit 739 --epochs 100 --cache-dir ~/.cache/skdynemb-demo
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import VotingRegressor
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

from skdynemb import (
    DynamicEmbeddingTransformer,
    ElementEmbeddingUnion,
    RoostRegressor,
    SeedEnsembleRegressor,
    StaticEmbeddingTransformer,
)
from skdynemb.datasets import jarvis_split_task

TARGET = "formation_energy_peratom"
ONLINE_SAMPLE = 1000


# --8<-- [start:search]
def candidates(cache_dir) -> list[dict]:
    """The rows to compare: a GridSearchCV grid over the pipeline's ``embed`` step."""
    def dynamic(backbone, stage=-1):
        return DynamicEmbeddingTransformer(backbone, stage=stage, memory=cache_dir, progress=False)

    return [
        {"embed": [dynamic("alignn-ff")], "embed__stage": ["alignn2", "all", -1]},  # stages of one backbone
        {"embed": [dynamic("cgcnn-mp-eform")]},                                      # another backbone
        {"embed": [ElementEmbeddingUnion([("alignn", dynamic("alignn-ff")),          # dynamic + static columns
                                          ("mat", StaticEmbeddingTransformer("matscholar200"))])]},
    ]


def choose(X, y, cache_dir, epochs=60, folds=3, seed=0) -> GridSearchCV:
    """k-fold inner CV over the candidate rows, one Roost seed per fit; refits the best on all of X."""
    pipe = Pipeline([("embed", "passthrough"),
                     ("model", RoostRegressor(max_epochs=epochs, batch_size=64, out_hidden=(256, 128, 64),
                                              random_state=seed))])
    search = GridSearchCV(pipe, candidates(cache_dir), cv=KFold(folds, shuffle=True, random_state=seed),
                          scoring="neg_mean_absolute_error")
    return search.fit(X, y)


def seed_ensemble(search: GridSearchCV, n_seeds=5, seed=0) -> Pipeline:
    """The chosen rows with the mean of ``n_seeds`` Roost seeds instead of one (fit it on the training set)."""
    best = clone(search.best_estimator_)
    return best.set_params(model=SeedEnsembleRegressor(best["model"], n_seeds=n_seeds, random_state=seed))


def top_k_ensemble(search: GridSearchCV, k=3) -> VotingRegressor:
    """The mean of the ``k`` best settings of the search (e.g. several stages)."""
    order = np.argsort(search.cv_results_["rank_test_score"], kind="stable")[:k]
    pipes = [clone(search.estimator).set_params(**search.cv_results_["params"][i]) for i in order]
    return VotingRegressor([(f"rank{r + 1}", p) for r, p in enumerate(pipes)])
# --8<-- [end:search]


def describe(params: dict) -> str:
    embed = params["embed"]
    if isinstance(embed, ElementEmbeddingUnion):
        return " + ".join(f"{t.backbone if hasattr(t, 'backbone') else t.embedding}" for _, t in embed.transformer_list)
    return f"{embed.backbone} stage={params.get('embed__stage', embed.stage)!r}"


def main(argv=None) -> dict:
    """Run the search and the ensembles; returns the test MAEs (eV/atom) and the search."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=60, help="Roost training epochs (default: 60)")
    parser.add_argument("--limit", type=int, default=300, help="training structures used (default: 300)")
    parser.add_argument("--folds", type=int, default=3, help="inner cross-validation folds (default: 3)")
    parser.add_argument("--seeds", type=int, default=5, help="members of the seed ensemble (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of Roost, the folds and the ensemble")
    parser.add_argument("--cache-dir", default=None, help="embedding cache folder (default: a temporary one)")
    parser.add_argument("--data-dir", default=None,
                        help="data folder holding jarvis/ (default: $SKDYNEMB_DATA, else ../shared/data, else online)")
    parser.add_argument("--online-sample", type=int, default=ONLINE_SAMPLE,
                        help=f"entries drawn from the online JARVIS-DFT (default: {ONLINE_SAMPLE})")
    args = parser.parse_args(argv)

    task, parts, source = jarvis_split_task(TARGET, args.data_dir, online_sample=args.online_sample)
    print(source, flush=True)
    train, test = parts["train"][: args.limit], parts["test"]
    X_train, y_train = list(task.structures[train]), task.y[train]
    X_test, y_test = list(task.structures[test]), task.y[test]

    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache_dir or tmp
        start = time.perf_counter()
        search = choose(X_train, y_train, cache, args.epochs, args.folds, args.seed)
        searched = time.perf_counter() - start
        ensemble = seed_ensemble(search, args.seeds, args.seed).fit(X_train, y_train)
        mean, std = ensemble.predict(X_test, return_std=True)
        voting = top_k_ensemble(search, 3).fit(X_train, y_train)
        results = {
            "predict the training mean": float(np.abs(y_test - y_train.mean()).mean()),
            "chosen rows, 1 seed": float(np.abs(search.predict(X_test) - y_test).mean()),
            f"chosen rows, {args.seeds}-seed ensemble": float(np.abs(mean - y_test).mean()),
            "3 best settings averaged": float(np.abs(voting.predict(X_test) - y_test).mean()),
        }
        inside = float(np.mean(np.abs(mean - y_test) <= std))

    table = pd.DataFrame({"rows": [describe(p) for p in search.cv_results_["params"]],
                          "CV MAE": -search.cv_results_["mean_test_score"],
                          "+/-": search.cv_results_["std_test_score"],
                          "rank": search.cv_results_["rank_test_score"]})
    print(f"{len(y_train)} training structures, {args.folds}-fold inner CV, {args.epochs} epochs, "
          f"{len(table)} settings in {searched:.0f} s\n")
    print(table.to_string(index=False, float_format="{:.4f}".format))
    print(f"\nchosen: {describe(search.best_params_)}")
    for name, value in results.items():
        print(f"test MAE, {name}: {value:.4f} eV/atom")
    print(f"test structures within the ensemble's +-1 std: {inside:.0%}")
    results["search"] = search
    return results


if __name__ == "__main__":
    main()
