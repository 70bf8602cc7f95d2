"""matminer: dynamic embeddings as one more featurizer in a ``featurize_dataframe`` workflow.

``DynamicEmbeddingFeaturizer`` adds the atom-averaged hidden vector of a pretrained GNN
(CGCNN's last stage, 64 columns) to a DataFrame of structures; matminer's own Magpie
composition features are added next to it. A random forest then predicts the refractive index
``n`` of Matbench's dielectric task, scored on the test part of official fold 1 (restricted to
the rows used), for Magpie features, dynamic features and both.

Data: the Matbench files of the data folder (``--data-dir DIR``, else ``$SKDYNEMB_DATA``, else
``../shared/data`` beside a clone of the repository); without one, matminer's own loader
(``matminer.datasets.load_dataset``, a download, once) and Matbench's fold rule, a shuffled 5-fold
``KFold`` with seed 18012019 (it reproduces the official folds of this task). The script says which.

Run time with the defaults (all 4,764 entries, 100 trees), OMP_NUM_THREADS=1: 1 min 22 s of CPU
time, the wall time on a free core (4 min 12 s on a 2-core machine busy with other jobs; measured
2026-12-05).

    python examples/matminer_featurize.py
    python examples/matminer_featurize.py --limit 1000 --trees 300
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from matminer.featurizers.composition import ElementProperty
from matminer.featurizers.conversions import StructureToComposition
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import KFold

from skdynemb.datasets import fetch_matbench, load_matbench_dielectric, matbench_folds
from skdynemb.datasets.local import MATBENCH_DIELECTRIC_FILE, data_file
from skdynemb.datasets.splits import MATBENCH_VALIDATION_FILE
from skdynemb.featurizers import DynamicEmbeddingFeaturizer

#: Matbench v0.1's fold rule (official folds = this KFold over the task's rows)
MATBENCH_SEED = 18012019


def load_data(limit=None, data_dir=None):
    """(Dataset, first official fold as (train, test) positions): local files, else online."""
    path = data_file(MATBENCH_DIELECTRIC_FILE, data_dir)
    if path is not None:
        print(f"data: {path}")
        data = load_matbench_dielectric(path, limit=limit)
        folds = data_file(MATBENCH_VALIDATION_FILE, data_dir)
        return data, matbench_folds("matbench_dielectric", ids=data.ids, path=folds)[0]
    print("data: no data folder (--data-dir, $SKDYNEMB_DATA or ../shared/data): matbench_dielectric through "
          "matminer, folds from KFold(5, shuffle=True, random_state=18012019)", flush=True)
    data = fetch_matbench("matbench_dielectric")
    train, test = next(KFold(5, shuffle=True, random_state=MATBENCH_SEED).split(np.arange(len(data))))
    keep = np.arange(len(data))[:limit]  # with --limit, the first rows and the parts of the fold among them
    return data.subset(keep), (train[train < len(keep)], test[test < len(keep)])


def main(argv=None) -> dict[str, float]:
    """Featurize, fit and score; returns {feature set: test MAE} (refractive index, dimensionless)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="use the first N entries")
    parser.add_argument("--trees", type=int, default=100, help="random forest size (default: 100)")
    parser.add_argument("--seed", type=int, default=0, help="random forest seed")
    parser.add_argument("--data-dir", default=None,
                        help="data folder holding matbench/ (default: $SKDYNEMB_DATA, else ../shared/data, "
                             "else the online loaders)")
    args = parser.parse_args(argv)

    data, (train, test) = load_data(args.limit, args.data_dir)
    print(f"{len(data)} structures; featurizing", flush=True)
    df = pd.DataFrame({"structure": list(data.structures), "n": data.targets["n"].to_numpy()}, index=data.ids)

    start = time.perf_counter()
    # --8<-- [start:featurize]
    dynamic = DynamicEmbeddingFeaturizer("cgcnn-mp-eform", stage=-1)  # fast and shipped; the default is alignn-ff
    df = dynamic.featurize_dataframe(df, "structure", pbar=False)  # one batched GNN run over the column

    to_composition = StructureToComposition()
    magpie = ElementProperty.from_preset("magpie", impute_nan=True)
    for featurizer in (to_composition, magpie):
        featurizer.set_n_jobs(1)  # matminer's default is a process pool over all cores
    df = to_composition.featurize_dataframe(df, "structure", pbar=False)
    df = magpie.featurize_dataframe(df, "composition", pbar=False)
    # --8<-- [end:featurize]
    print(f"{len(dynamic.feature_labels())} dynamic + {len(magpie.feature_labels())} Magpie columns "
          f"in {time.perf_counter() - start:.1f} s", flush=True)

    feature_sets = {
        "Magpie": magpie.feature_labels(),
        "dynamic (cgcnn-mp-eform)": dynamic.feature_labels(),
        "Magpie + dynamic": magpie.feature_labels() + dynamic.feature_labels(),
    }
    y = df["n"].to_numpy()
    results = {"predict the training mean": float(np.abs(y[test] - y[train].mean()).mean())}
    for name, columns in feature_sets.items():
        X = df[columns].to_numpy()
        forest = RandomForestRegressor(n_estimators=args.trees, random_state=args.seed, n_jobs=1)
        forest.fit(X[train], y[train])
        results[name] = float(np.abs(forest.predict(X[test]) - y[test]).mean())

    print(f"\nMatbench dielectric, fold 1: {len(train)} train / {len(test)} test; MAE of n")
    for name, mae in results.items():
        print(f"{name:<28}{mae:>8.4f}")
    return results


if __name__ == "__main__":
    main()
