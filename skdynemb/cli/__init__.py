"""The ``skdynemb`` command line.

Every subcommand is one module of this package (``extract``, ``backbones``, ``pretrain``) with a
function ``add_cli(subparsers)``: it adds its parser with ``subparsers.add_parser(...)`` and sets
``handler`` (parsed args -> exit code) with ``set_defaults``. Registering a subcommand = one
``"module:function"`` line in :data:`COMMANDS`. Modules are imported only to register; handlers
import heavy libraries themselves, so ``skdynemb --help`` stays fast. This package holds the
shared pieces (:func:`main`, :func:`int_at_least`, :func:`report_error`, the exit codes); the
library packages below it (``skdynemb.pretrain``, ``skdynemb.streaming``, ...) have no argparse.

Global options (``--traceback``) are accepted before or after the subcommand.

Exit codes: 0 success, 1 error (bad input, invalid structure, conflicting files), 2 bad
usage, 130 interrupted (Ctrl-C; ``extract`` keeps finished chunks and resumes on re-run).
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: Subcommand registrars, as "module:function" taking argparse's subparsers.
COMMANDS = [
    "skdynemb.cli.extract:add_cli",
    "skdynemb.cli.backbones:add_cli",
    "skdynemb.cli.pretrain:add_cli",
]

EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 130


def report_error(command: str, message) -> int:
    """Print ``skdynemb COMMAND: error: MESSAGE`` to stderr; returns :data:`EXIT_ERROR`.

    Parameters
    ----------
    command : str
        The subcommand, e.g. ``"extract"``.
    message : object
        The error (an exception or text).

    Returns
    -------
    code : int
        :data:`EXIT_ERROR`.
    """
    print(f"skdynemb {command}: error: {message}", file=sys.stderr)
    return EXIT_ERROR


# ----------------------------------------------------------------------------- shared argument helpers
def int_at_least(minimum: int):
    """argparse ``type``: an integer >= ``minimum`` (anything else is a usage error).

    Parameters
    ----------
    minimum : int
        The smallest accepted value.

    Returns
    -------
    parse : callable
        ``str -> int``, raising ``argparse.ArgumentTypeError`` for other input.
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


# ----------------------------------------------------------------------------- entry point
_TRACEBACK_HELP = "show full tracebacks of errors"


def build_parser() -> argparse.ArgumentParser:
    """The ``skdynemb`` parser with every subcommand of :data:`COMMANDS` registered.

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    from skdynemb import __version__

    parser = argparse.ArgumentParser(
        prog="skdynemb",
        description="Dynamic (structure-aware) element embeddings from pretrained GNNs.",
        epilog="exit codes: 0 ok, 1 error, 2 bad usage, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"skdynemb {__version__}")
    parser.add_argument("--traceback", action="store_true", help=_TRACEBACK_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for spec in COMMANDS:
        module, function = spec.split(":")
        getattr(importlib.import_module(module), function)(subparsers)
    for sub in subparsers.choices.values():  # global options after the subcommand too
        # SUPPRESS: when not given here, the value parsed before the subcommand stays
        sub.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS, help=_TRACEBACK_HELP)
    return parser


def main(argv=None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    code : int
        The exit code: 0 ok, 1 error, 2 bad usage (argparse exits itself), 130 interrupted.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print(f"skdynemb {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, OSError, ImportError) as exc:
        if args.traceback:
            raise
        return report_error(args.command, exc)
