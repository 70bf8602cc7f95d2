"""ElemNet and AutoML on atom-averaged dynamic vectors vs composition-only inputs.

Models that take one flat vector per compound (ElemNet, AutoML) use the dynamic embedding with
``pooling="mean"``: the fraction-weighted mean of the element rows, i.e. the average over all
atoms of the GNN's hidden vectors. They are compared with the paper's composition baselines,
element fractions (ElemNet's own 86-d input) and Magpie statistics (132-d), on the official
JARVIS split of ``formation_energy_peratom`` (eV/atom): fit on train, MAE on test.

Data: the JARVIS file of the data folder (``--data-dir DIR``, else ``$SKDYNEMB_DATA``, else
``../shared/data`` beside a clone of the repository) with the official leaderboard split; without
one, ``--online-sample`` random entries of JARVIS-DFT through jarvis-tools (a download, once),
split 80:10:10 with seed 0. The script says which.

AutoML is FLAML ended by a trial count (``time_budget=-1, max_iter=...``), so its search is
reproducible. Run time with the defaults (739 training structures, ElemNet up to 60 epochs with
early stopping, 30 AutoML trials), OMP_NUM_THREADS=1: 2 min 2 s of CPU time, the wall time on a
free core (3 min 34 s on a 2-core machine busy with other jobs; measured 2026-12-05).

    python examples/elemnet_automl.py
    python examples/elemnet_automl.py --epochs 1000 --automl-trials 100   # ElemNet's own epoch limit
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from skdynemb import (
    AutoMLRegressor,
    DynamicEmbeddingTransformer,
    ElementFractionTransformer,
    ElemNetRegressor,
    MagpieTransformer,
)
from skdynemb.datasets import jarvis_split_task

TARGET = "formation_energy_peratom"
ONLINE_SAMPLE = 1000


def main(argv=None) -> dict[str, dict[str, float]]:
    """Fit every (input, model) pair; returns {input: {model: test MAE in eV/atom}}."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=60, help="ElemNet epoch limit (default: 60)")
    parser.add_argument("--automl-trials", type=int, default=30, help="FLAML trials (default: 30)")
    parser.add_argument("--limit", type=int, default=None, help="use the first N entries of train and test")
    parser.add_argument("--seed", type=int, default=0, help="seed of ElemNet and of the AutoML search")
    parser.add_argument("--data-dir", default=None,
                        help="data folder holding jarvis/ (default: $SKDYNEMB_DATA, else ../shared/data, "
                             "else the online loaders)")
    parser.add_argument("--online-sample", type=int, default=ONLINE_SAMPLE,
                        help=f"entries drawn from the online JARVIS-DFT (default: {ONLINE_SAMPLE})")
    args = parser.parse_args(argv)

    task, parts, source = jarvis_split_task(TARGET, args.data_dir, online_sample=args.online_sample)
    print(source, flush=True)
    train, test = parts["train"][: args.limit], parts["test"][: args.limit]
    structures = {"train": list(task.structures[train]), "test": list(task.structures[test])}
    y_train, y_test = task.y[train], task.y[test]
    print(f"JARVIS {TARGET}: {len(y_train)} train / {len(y_test)} test structures", flush=True)

    inputs = {
        "element fractions": ElementFractionTransformer(elements="all"),
        "Magpie": MagpieTransformer(),
        "dynamic cgcnn-mp-eform (mean)": DynamicEmbeddingTransformer("cgcnn-mp-eform", pooling="mean", progress=False),
    }
    models = {
        "ElemNet": lambda: ElemNetRegressor(max_epochs=args.epochs, patience=20, random_state=args.seed),
        "AutoML": lambda: AutoMLRegressor(time_budget=-1, max_iter=args.automl_trials, random_state=args.seed),
    }
    results = {"predict the training mean": {name: float(np.abs(y_test - y_train.mean()).mean()) for name in models}}
    for input_name, transformer in inputs.items():
        X_train = transformer.fit_transform(structures["train"])
        X_test = transformer.transform(structures["test"])
        results[input_name] = {}
        for model_name, make_model in models.items():
            start = time.perf_counter()
            model = make_model().fit(X_train, y_train)
            results[input_name][model_name] = float(np.abs(model.predict(X_test) - y_test).mean())
            chosen = f", chose {model.best_estimator_}" if model_name == "AutoML" else ""
            print(f"{input_name} ({X_train.shape[1]}-d) -> {model_name}: {time.perf_counter() - start:.0f} s{chosen}",
                  flush=True)

    print(f"\nJARVIS formation energy, {len(y_train)} train / {len(y_test)} test: test MAE (eV/atom)")
    print(f"{'input':<32}" + "".join(f"{name:>10}" for name in models))
    for input_name, row in results.items():
        print(f"{input_name:<32}" + "".join(f"{row[name]:>10.4f}" for name in models))
    return results


if __name__ == "__main__":
    main()
