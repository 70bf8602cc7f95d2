"""``skdynemb backbones``: list the registered backbones with their stage names and widths."""

from __future__ import annotations

from skdynemb.cli import EXIT_ERROR, EXIT_OK, report_error


def add_cli(subparsers) -> None:
    """Register the ``backbones`` subcommand (sets ``handler``).

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``add_subparsers()`` object of the ``skdynemb`` parser.
    """
    p = subparsers.add_parser(
        "backbones",
        help="list the available backbones with their stages",
        description="List registered backbones; each is loaded to show its stage names and widths.",
    )
    p.add_argument("names", nargs="*", help="backbones to show (default: all)")
    p.add_argument("--weights", default=None, help="checkpoint to load (with one backbone name)")
    p.set_defaults(handler=run_backbones)


def run_backbones(args) -> int:
    """Run ``skdynemb backbones``: print each backbone's stages with their widths.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``backbones`` arguments (``names``, ``weights``).

    Returns
    -------
    code : int
        The exit code: 0 ok, 1 when an unknown or a named backbone cannot be loaded.
    """
    from skdynemb.backbones import available_backbones, load_backbone

    names = args.names or available_backbones()
    unknown = [n for n in names if n not in available_backbones()]
    if unknown:
        return report_error("backbones", f"unknown backbone(s) {unknown}; available: {available_backbones()}")
    if args.weights is not None and len(names) != 1:
        return report_error("backbones", "--weights needs exactly one backbone name")
    failed = False
    for name in names:
        try:
            bb = load_backbone(name, args.weights)
        except Exception as exc:  # report every backbone, whatever stops one of them loading
            print(f"{name}: not loadable here: {type(exc).__name__}: {exc}")
            failed = failed or bool(args.names)
            continue
        stages = ", ".join(f"{s} ({d})" for s, d in zip(bb.stage_names, bb.stage_dims))
        print(f"{name}: {len(bb.stage_names)} stages: {stages}")
        for kind, dims in (("bond", bb.bond_dims), ("angle", bb.angle_dims)):
            if dims:
                print(f"  {kind} features per stage: {dims}")
    return EXIT_ERROR if failed else EXIT_OK
