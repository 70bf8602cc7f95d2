"""``skdynemb extract``: pooled stage features of many structures into a parquet/npz file (resumable)."""

from __future__ import annotations

import argparse
import sys

import warnings

from skdynemb.cli import EXIT_INTERRUPTED, EXIT_OK, int_at_least, report_error
from skdynemb.extraction import DEFAULT_BACKBONE

_positive = int_at_least(1)


def parse_stage(text: str):
    """``-1`` / ``conv4`` / ``all`` / ``0,3`` / ``embedding,conv4`` -> the transformer's ``stage``.

    Parameters
    ----------
    text : str
        The ``--stage`` argument.

    Returns
    -------
    stage : int, str or list of int and str
        One stage index or name, ``"all"``, or a list of them.

    Raises
    ------
    argparse.ArgumentTypeError
        An empty item, or ``all`` combined with other stages.
    """
    items = [t.strip() for t in text.split(",")]
    if any(not t for t in items):
        raise argparse.ArgumentTypeError(f"invalid stage list {text!r}")
    parsed = [int(t) if t.lstrip("-").isdigit() else t for t in items]
    if "all" in parsed and len(parsed) > 1:
        raise argparse.ArgumentTypeError("'all' cannot be combined with other stages")
    return parsed[0] if len(parsed) == 1 else parsed


class _RenamedLayer(argparse.Action):
    """``--layer``: the deprecated spelling of ``--stage`` (a FutureWarning; removed in 0.3)."""

    def __call__(self, parser, namespace, values, option_string=None):
        warnings.warn("--layer was renamed --stage in 0.2 and will be removed in 0.3", FutureWarning, stacklevel=2)
        if getattr(namespace, "stage_given", False):
            parser.error("--stage and --layer were both given; --layer is the old name of --stage: pass --stage only")
        namespace.stage, namespace.stage_given = values, True


class _Stage(argparse.Action):
    """``--stage``: refuses to be combined with the deprecated ``--layer``."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, "stage_given", False):
            parser.error("--stage and --layer were both given; --layer is the old name of --stage: pass --stage only")
        namespace.stage, namespace.stage_given = values, True


def add_cli(subparsers) -> None:
    """Register the ``extract`` subcommand (sets ``handler``).

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``add_subparsers()`` object of the ``skdynemb`` parser.
    """
    p = subparsers.add_parser(
        "extract",
        help="extract dynamic embeddings of many structures into a parquet/npz file (resumable)",
        description=(
            "Run a pretrained GNN over every structure of INPUT and write its pooled stage features to "
            "OUTPUT, chunk by chunk. Finished chunks are kept in OUTPUT.parts/: an interrupted run "
            "(Ctrl-C, crash, kill) resumes when the same command is run again."
        ),
        epilog=(
            "examples:\n"
            "  skdynemb extract structures/ -o emb.parquet\n"
            "  skdynemb extract mp.json.gz -o emb.parquet --id-field material_id --structure-field cif "
            "--stage all --pooling element --n-jobs 2 --skip-invalid\n"
            "  skdynemb extract matbench_dielectric.json.gz -o emb.npz --dask tcp://scheduler:8786\n"
            "  skdynemb extract df.json.gz -o emb.parquet   # matminer store_dataframe_as_json(df, ...)\n"
            "exit codes: 0 ok, 1 error, 2 bad usage, 130 interrupted (re-run to resume)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "input",
        help="folder of CIF/POSCAR files (ids = file stems), or JSON/JSON.GZ/JSON.BZ2: a list of records "
        "(id + structure as pymatgen dict or CIF/POSCAR text), or a pandas 'columns' or 'split' table "
        "(matminer's store_dataframe_as_json)",
    )
    p.add_argument("-o", "--output", required=True, help="output file, .parquet or .npz")
    p.add_argument(
        "--backbone", default=DEFAULT_BACKBONE,
        help=f"registered backbone (see `skdynemb backbones`; default: {DEFAULT_BACKBONE}, the best downstream, its "
        "60 MB weights fetched once into the skdynemb cache; cgcnn-mp-eform: ~25x faster, shipped, no download)",
    )
    p.add_argument("--weights", default=None, help="checkpoint for the backbone (required for alignn)")
    p.add_argument(
        "--stage", type=parse_stage, default=-1, action=_Stage,
        help="stage(s): index (-1 = last), stage name, 'all', or a comma list such as 0,3 (default: -1)",
    )
    p.add_argument("--layer", type=parse_stage, action=_RenamedLayer, help="deprecated: the old name of --stage")
    p.add_argument(
        "--pooling", choices=["mean", "element"], default="mean",
        help="mean: one row per structure; element: one row per (structure, element) with its fraction",
    )
    p.add_argument(
        "--compound-features", choices=["bond", "bond+angle"], default=None,
        help="append the structure's mean bond (and angle) features (backbones that have them)",
    )
    p.add_argument(
        "--batch-size", type=_positive, default=None,
        help="structures per forward pass and per worker task (default: the backbone's, 64 for alignn-ff and CGCNN)",
    )
    p.add_argument(
        "--chunk-size", type=_positive, default=1000,
        help="structures per part file, the unit of memory use and of resumption (default: 1000)",
    )
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--n-jobs", type=int, default=None,
        help="parallel workers, one batch each (joblib; -1 = all cores; default: none, in-process)",
    )
    p.add_argument(
        "--dask", metavar="ADDRESS", default=None,
        help="run the workers on this dask scheduler (e.g. tcp://host:8786); implies --n-jobs -1",
    )
    p.add_argument("--id-field", default=None, help="JSON field/column with the ids (default: auto-detected)")
    p.add_argument("--structure-field", default=None, help="JSON field/column with the structures (default: auto)")
    p.add_argument(
        "--skip-invalid", action="store_true",
        help="leave out structures that cannot be read or featurized (wherever that fails: parsing, checks, "
        "the backbone's graph or forward pass), listing them in OUTPUT.errors.csv (default: stop)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT and discard unfinished parts")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_extract)


def run_extract(args) -> int:
    """Run ``skdynemb extract``: featurize the input's structures into the output file.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``extract`` arguments.

    Returns
    -------
    code : int
        The exit code: 0 ok, 1 error.
    """
    from contextlib import ExitStack

    import joblib

    from skdynemb._optional import needs_extra
    from skdynemb.errors import BackboneBatchError, InvalidStructureError
    # without pyarrow: names the parquet extra
    from skdynemb.streaming import OutputBusyError, extract_to_file, parts_dir
    from skdynemb.transformers.dynamic import DynamicEmbeddingTransformer

    n_jobs = args.n_jobs if args.n_jobs is not None or args.dask is None else -1
    transformer = DynamicEmbeddingTransformer(
        backbone=args.backbone, weights=args.weights, stage=args.stage, pooling=args.pooling,
        compound_features=args.compound_features, device=args.device, batch_size=args.batch_size,
        n_jobs=n_jobs, progress=False,
    )
    try:
        with ExitStack() as stack:
            if args.dask is not None:
                with needs_extra("--dask"):
                    from dask.distributed import Client

                stack.enter_context(Client(args.dask))
                stack.enter_context(joblib.parallel_config("dask"))
            summary = extract_to_file(
                args.input, args.output, transformer, chunk_size=args.chunk_size, id_field=args.id_field,
                structure_field=args.structure_field, skip_invalid=args.skip_invalid,
                overwrite=args.overwrite, progress=not args.no_progress,
            )
    except InvalidStructureError as exc:
        if args.traceback:
            raise
        return report_error("extract", f"{exc}\n(--skip-invalid leaves such structures out and lists them in a CSV; "
                      "re-running resumes after the finished chunks)")
    except OutputBusyError as exc:  # another `skdynemb extract` writes the same OUTPUT
        if args.traceback:
            raise
        return report_error("extract", exc)
    except BackboneBatchError as exc:  # not one structure's fault: --skip-invalid cannot help
        if args.traceback:
            raise
        return report_error("extract", f"{exc}\n(re-running resumes after the finished chunks)")
    except KeyboardInterrupt:
        parts = parts_dir(args.output)
        saved = len(list(parts.glob("part-*.parquet"))) if parts.is_dir() else 0
        print(f"skdynemb extract: interrupted; {saved} finished chunk(s) kept in {parts}; "
              "run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    resumed = f", {summary.resumed_chunks} chunk(s) resumed from disk" if summary.resumed_chunks else ""
    print(f"wrote {summary.n_rows} rows for {summary.n_structures - len(summary.errors)} structures "
          f"to {summary.output}{resumed}")
    if summary.errors:
        print(f"{len(summary.errors)} invalid structure(s) left out, listed in {summary.errors_file}")
    return EXIT_OK
