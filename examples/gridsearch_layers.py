"""Tune which GNN stage to read, together with Roost's depth, by cross-validation.

``GridSearchCV`` over ``dynamicembeddingtransformer__stage`` (CGCNN stages: 0 = embedding,
2 = conv2, -1 = conv4) and ``roostregressor__n_graph`` on the official JARVIS training split of
``formation_energy_peratom`` (eV/atom); the best pipeline, refit on all training structures, is
scored on the official test split. The transformer's ``memory=`` folder caches every stage of
every structure on the first fit, so the other folds and stages read the cache instead of running
the GNN again.

Data: the JARVIS file of the data folder (``--data-dir DIR``, else ``$SKDYNEMB_DATA``, else
``../shared/data`` beside a clone of the repository) with the official leaderboard split; without
one, ``--online-sample`` random entries of JARVIS-DFT through jarvis-tools (a download, once),
split 80:10:10 with seed 0. The script says which, then prints the search's progress (one line per
setting and fold) and a table of every setting.

Run time with the defaults (300 training structures, 3 folds x 6 settings + refit, 40 epochs),
OMP_NUM_THREADS=1: 1 min 57 s of CPU time, the wall time on a free core (7 min 7 s on a 2-core
machine busy with other jobs; measured 2026-12-05).

    python examples/gridsearch_layers.py
    python examples/gridsearch_layers.py --limit 739 --epochs 100 --cache-dir ~/.cache/skdynemb-demo
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pandas as pd
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline

from skdynemb import DynamicEmbeddingTransformer, RoostRegressor
from skdynemb.datasets import jarvis_split_task

TARGET = "formation_energy_peratom"
ONLINE_SAMPLE = 1000


# --8<-- [start:search]
GRID = {"dynamicembeddingtransformer__stage": [0, 2, -1], "roostregressor__n_graph": [1, 3]}


def stage_search(X, y, cache_dir, epochs=40, folds=3, seed=0, verbose=0) -> GridSearchCV:
    """Cross-validated search over the CGCNN stage and Roost's depth; embeddings cached in cache_dir."""
    pipeline = make_pipeline(
        # the fast shipped backbone (the default, alignn-ff, extracts ~25x slower)
        DynamicEmbeddingTransformer("cgcnn-mp-eform", memory=cache_dir, progress=False),
        RoostRegressor(max_epochs=epochs, random_state=seed),
    )
    search = GridSearchCV(
        pipeline, GRID, cv=KFold(folds, shuffle=True, random_state=seed), scoring="neg_mean_absolute_error",
        verbose=verbose,  # 3: one line per fit, with its score and time
    )
    return search.fit(X, y)
# --8<-- [end:search]


def main(argv=None) -> GridSearchCV:
    """Run the search; returns the fitted GridSearchCV."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=40, help="Roost training epochs (default: 40)")
    parser.add_argument("--limit", type=int, default=300, help="training structures used (default: 300)")
    parser.add_argument("--folds", type=int, default=3, help="cross-validation folds (default: 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of Roost and of the fold shuffle")
    parser.add_argument("--cache-dir", default=None, help="embedding cache folder (default: a temporary one)")
    parser.add_argument("--data-dir", default=None,
                        help="data folder holding jarvis/ (default: $SKDYNEMB_DATA, else ../shared/data, "
                             "else the online loaders)")
    parser.add_argument("--online-sample", type=int, default=ONLINE_SAMPLE,
                        help=f"entries drawn from the online JARVIS-DFT (default: {ONLINE_SAMPLE})")
    parser.add_argument("--quiet", action="store_true", help="no line per fit")
    args = parser.parse_args(argv)

    task, parts, source = jarvis_split_task(TARGET, args.data_dir, online_sample=args.online_sample)
    print(source, flush=True)
    train, test = parts["train"][: args.limit], parts["test"]
    X_train, y_train = list(task.structures[train]), task.y[train]
    X_test, y_test = list(task.structures[test]), task.y[test]

    n_settings = len(GRID["dynamicembeddingtransformer__stage"]) * len(GRID["roostregressor__n_graph"])
    print(f"{len(y_train)} training / {len(y_test)} test structures; searching {n_settings} settings x "
          f"{args.folds} folds, {args.epochs} epochs each, then refitting the best", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        search = stage_search(X_train, y_train, args.cache_dir or tmp, args.epochs, args.folds, args.seed,
                              verbose=0 if args.quiet else 3)
        elapsed = time.perf_counter() - start
        test_mae = float(np.abs(search.predict(X_test) - y_test).mean())
    search.best_estimator_.set_params(dynamicembeddingtransformer__memory=None)  # the cache is gone

    table = pd.DataFrame(search.cv_results_["params"]).rename(
        columns={"dynamicembeddingtransformer__stage": "stage", "roostregressor__n_graph": "n_graph"}
    )
    table["stage name"] = [search.best_estimator_[0].backbone_.stage_names[stage] for stage in table["stage"]]
    table["CV MAE"] = -search.cv_results_["mean_test_score"]
    table["+/-"] = search.cv_results_["std_test_score"]
    table["rank"] = search.cv_results_["rank_test_score"]
    print(f"{len(y_train)} training structures, {args.folds}-fold CV, {args.epochs} epochs, "
          f"{len(table)} settings in {elapsed:.0f} s\n")
    print(table.to_string(index=False, float_format="{:.4f}".format))
    print(f"\nbest: {search.best_params_}")
    print(f"test MAE of the refit best pipeline: {test_mae:.4f} eV/atom "
          f"(predict-the-mean: {np.abs(y_test - y_train.mean()).mean():.4f})")
    return search


if __name__ == "__main__":
    main()
