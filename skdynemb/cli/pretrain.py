"""``skdynemb pretrain``: train an ALIGNN extractor on a JSON file of (id, structure, target) records."""

from __future__ import annotations

import argparse
import sys

from skdynemb.cli import EXIT_INTERRUPTED, EXIT_OK, int_at_least

_positive, _count = int_at_least(1), int_at_least(0)


def add_cli(subparsers) -> None:
    """Register the ``pretrain`` subcommand (sets ``handler``).

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``add_subparsers()`` object of the ``skdynemb`` parser.
    """
    p = subparsers.add_parser(
        "pretrain",
        help="train an ALIGNN extractor on a structure/target data set (resumable)",
        description=(
            "Train ALIGNN from scratch on the records of DATA (seeded train/val/test hold-out), keeping the "
            "best-validation checkpoint in OUTPUT/best (load it with --backbone alignn --weights OUTPUT/best). "
            "Re-running the same command resumes after the last finished epoch."
        ),
        epilog=(
            "example:\n"
            "  skdynemb pretrain --data mp_eform.json.gz --target e_form --output runs/alignn-mp \\\n"
            "      --epochs 20 --hidden-features 64 --alignn-layers 2 --gcn-layers 2 --threads 1\n"
            "exit codes: 0 ok, 1 error, 2 bad usage, 130 interrupted (re-run to resume)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, help="JSON / JSON.GZ list of records (id, structure, target)")
    p.add_argument("--target", required=True, help="record field holding the target (e.g. e_form)")
    p.add_argument("--output", required=True, help="output folder (checkpoints, log, graph cache)")
    p.add_argument("--id-field", default=None, help="record id field (default: auto-detected, as extract)")
    p.add_argument("--structure-field", default=None,
                   help="structure field: CIF/POSCAR text or pymatgen dict (default: auto-detected)")
    p.add_argument("--limit", type=_positive, default=None, help="use only the first N records")
    p.add_argument("--epochs", type=_positive, default=300, help="training epochs (default: 300)")
    p.add_argument("--hidden-features", type=_positive, default=256, help="hidden width (default: 256)")
    p.add_argument("--embedding-features", type=_positive, default=64, help="bond/angle embedding width (default: 64)")
    p.add_argument("--alignn-layers", type=_count, default=4, help="ALIGNN layers (default: 4)")
    p.add_argument("--gcn-layers", type=_count, default=4, help="edge-gated GCN layers (default: 4)")
    p.add_argument("--max-neighbors", type=_positive, default=12, help="k of the k-nearest graph (default: 12)")
    p.add_argument("--cutoff", type=float, default=8.0, help="initial neighbour cutoff, Å (default: 8)")
    p.add_argument("--no-canonize", action="store_true",
                   help="keep every site's neighbour shell as found (alignn use_canonize=False, as ALIGNN-FF)")
    p.add_argument("--batch-size", type=_positive, default=64, help="structures per step (default: 64)")
    p.add_argument("--lr", type=float, default=1e-3, help="(peak) learning rate (default: 1e-3)")
    p.add_argument("--weight-decay", type=float, default=1e-5, help="AdamW weight decay (default: 1e-5)")
    p.add_argument("--loss", choices=["mae", "mse"], default="mae", help="training loss (default: mae)")
    p.add_argument(
        "--scheduler", choices=["onecycle", "none"], default="onecycle", help="LR schedule (default: onecycle)"
    )
    p.add_argument("--val-fraction", type=float, default=0.1, help="validation share (default: 0.1)")
    p.add_argument("--test-fraction", type=float, default=0.1, help="test share (default: 0.1)")
    p.add_argument("--seed", type=int, default=123, help="split, initialisation and shuffling seed (default: 123)")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, ...")
    p.add_argument("--threads", type=_positive, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if OUTPUT holds a run")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=run_pretrain)


def read_records(path, target: str, id_field=None, structure_field=None, limit=None):
    """(ids, raw structures, targets) from a JSON / JSON.GZ list of records; bad records raise naming them.

    Parameters
    ----------
    path : str or Path
        The JSON or JSON.GZ file: a list of objects.
    target : str
        The record field holding the target value (a number).
    id_field, structure_field : str, optional
        The record fields with the id and the structure; None: picked from the known names
        (:data:`~skdynemb.records.ID_FIELDS`, :data:`~skdynemb.records.STRUCTURE_FIELDS`).
    limit : int, optional
        Read only the first ``limit`` records.

    Returns
    -------
    ids : list of str
        Record ids.
    structures : list
        The raw structures (CIF text, dicts, ...), not yet parsed.
    targets : list of float
        Target values, in the file's units.

    Raises
    ------
    ValueError
        The file is not a non-empty list of records, or a record lacks a field or has a
        non-numeric target (the message names its index and id).
    """
    from skdynemb.datasets._core import read_json
    from skdynemb.records import ID_FIELDS, STRUCTURE_FIELDS, pick_field

    records = read_json(path)
    if not isinstance(records, list) or not records or not isinstance(records[0], dict):
        raise ValueError(f"{path}: expected a non-empty JSON list of records (objects)")
    records = records[:limit] if limit is not None else records
    id_field = pick_field(id_field, ID_FIELDS, records[0], "id", f"{path}: record 0", "--id-field")
    structure_field = pick_field(
        structure_field, STRUCTURE_FIELDS, records[0], "structure", f"{path}: record 0", "--structure-field"
    )
    ids, raw, y = [], [], []
    for i, record in enumerate(records):
        missing = [
            k for k in (id_field, structure_field, target) if not isinstance(record, dict) or record.get(k) is None
        ]
        if missing:
            rid = record.get(id_field) if isinstance(record, dict) else None
            raise ValueError(f"{path}: record {i} (id={rid!r}) has no {missing} value")
        try:
            y.append(float(record[target]))
        except (TypeError, ValueError):
            raise ValueError(
                f"{path}: record {i} (id={record[id_field]!r}): target {record[target]!r} is not a number"
            ) from None
        ids.append(str(record[id_field]))
        raw.append(record[structure_field])
    return ids, raw, y


def run_pretrain(args) -> int:
    """Run ``skdynemb pretrain``: train ALIGNN on the records' targets and save the checkpoint.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``pretrain`` arguments.

    Returns
    -------
    code : int
        The exit code: 0 ok, 1 error.
    """
    from tqdm.auto import tqdm

    from skdynemb.backbones.alignn import ALIGNNConfig
    from skdynemb.backbones.alignn.graphs import KNearestGraph
    from skdynemb.pretrain import pretrain_alignn
    from skdynemb.structures import to_crystal

    ids, raw, y = read_records(args.data, args.target, args.id_field, args.structure_field, args.limit)
    crystals = [to_crystal(s, index=i, id=ids[i])
                for i, s in enumerate(tqdm(raw, desc="reading structures", disable=args.no_progress, unit="structure"))]
    config = ALIGNNConfig(hidden_features=args.hidden_features, embedding_features=args.embedding_features,
                          alignn_layers=args.alignn_layers, gcn_layers=args.gcn_layers)
    try:
        result = pretrain_alignn(
            crystals, y, ids=ids, output_dir=args.output, config=config,
            graph=KNearestGraph(args.cutoff, args.max_neighbors, canonize=not args.no_canonize),
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            weight_decay=args.weight_decay, loss=args.loss, scheduler=args.scheduler,
            val_fraction=args.val_fraction, test_fraction=args.test_fraction, random_state=args.seed,
            resume=not args.no_resume, device=args.device, num_threads=args.threads, progress=not args.no_progress,
        )
    except KeyboardInterrupt:
        print(f"skdynemb pretrain: interrupted; finished epochs are kept in {args.output}; "
              "run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    test = "n/a" if result.test_mae is None else f"{result.test_mae:.4f}"
    print(f"best epoch {result.best_epoch}: val MAE {result.val_mae:.4f}, test MAE {test} ({args.target} units); "
          f"checkpoint {result.checkpoint}")
    return EXIT_OK
