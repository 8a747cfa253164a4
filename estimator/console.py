"""What every command line of the project shares: logging, one-line errors, common options.

Used by ``estimator``'s and ``training``'s command lines alike; only command lines configure
logging. Errors raised on purpose (:class:`~estimator.errors.EstimatorError`) print one
actionable line and exit with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable

from estimator.errors import EstimatorError

__all__ = ["add_command", "add_common_options", "add_set_option", "guarded", "setup_logging"]


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # odc-stac logs every ignored read failure; we count and report them ourselves.
    logging.getLogger("odc").setLevel(logging.ERROR)
    # urllib3 logs each connection retry and pooch each download attempt; the one-line
    # error says what failed.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    logging.getLogger("pooch").setLevel(logging.ERROR)
    # odc-loader reprojects in-memory arrays through rasterio, which warns they have no
    # geotransform; the warning is about odc's scratch arrays, not the user's data.
    from rasterio.errors import NotGeoreferencedWarning

    warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def guarded(fn: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; turn expected errors into one line on stderr and exit status 2."""
    setup_logging(getattr(args, "verbose", False))
    if not args.debug:
        warnings.showwarning = _warning_line
    try:
        return fn(args)
    except KeyboardInterrupt:
        print("interrupted; finished tiles are kept and a rerun resumes from them", file=sys.stderr)
        return 130
    except EstimatorError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


def add_set_option(p: argparse.ArgumentParser, what: str = "job") -> None:
    """``--set KEY=VALUE`` (repeatable): override a key of the job or training file."""
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help=f"override a {what} key, e.g. grid.tile_size=1024"
    )


def add_common_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("common options")
    g.add_argument("--debug", action="store_true", help="show tracebacks")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    g.add_argument("--verbose", action="store_true", help="log progress details")


def add_command(
    sub: argparse._SubParsersAction,
    name: str,
    fn: Callable[[argparse.Namespace], int] | None,
    *,
    help: str,
    description: str | None = None,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """One subcommand of every CLI here: ``help`` in the command list, ``description`` (or
    ``help``) and the examples ``epilog`` kept as written, ``--debug/--quiet/--verbose``
    listed apart (after the command's own options) and ``fn`` as what runs it. ``fn=None``
    for a command group whose subcommands run."""
    p = sub.add_parser(
        name,
        help=help,
        description=description or help,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if fn is not None:
        add_common_options(p)
        p.set_defaults(fn=fn)
    return p
