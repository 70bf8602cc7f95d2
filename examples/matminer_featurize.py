"""matminer: dynamic embeddings as one more featurizer in a ``featurize_dataframe`` workflow.

``DynamicEmbeddingFeaturizer`` adds the atom-averaged hidden vector of a pretrained GNN
(CGCNN's last stage, 64 columns) to a DataFrame of structures; matminer's own Magpie
composition features are added next to it. A random forest then predicts the refractive index
``n`` of Matbench's dielectric task, scored on the test part of official fold 1 (restricted to
the rows used), for Magpie features, dynamic features and both.

Run time with the defaults (all 4,764 entries, 100 trees) on 2 CPU cores: about 2 minutes
(~25 s of featurization, the rest random forests).

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

from skdynemb.datasets import load_matbench_dielectric, matbench_folds
from skdynemb.featurizers import DynamicEmbeddingFeaturizer


def main(argv=None) -> dict[str, float]:
    """Featurize, fit and score; returns {feature set: test MAE} (refractive index, dimensionless)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="use the first N entries")
    parser.add_argument("--trees", type=int, default=100, help="random forest size (default: 100)")
    parser.add_argument("--seed", type=int, default=0, help="random forest seed")
    args = parser.parse_args(argv)

    data = load_matbench_dielectric(limit=args.limit)
    df = pd.DataFrame({"structure": list(data.structures), "n": data.targets["n"].to_numpy()}, index=data.ids)

    start = time.perf_counter()
    # --8<-- [start:featurize]
    dynamic = DynamicEmbeddingFeaturizer("cgcnn-mp-eform", layer=-1)  # fast and shipped; the default is alignn-ff
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

    train, test = matbench_folds("matbench_dielectric", ids=data.ids)[0]
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
