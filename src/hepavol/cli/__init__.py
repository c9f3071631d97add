"""The ``hepavol`` command line: one console script with subcommands.

Each subcommand is a module of this package that defines ``register(subparsers, parents)``; modules are found
automatically (names starting with ``_`` are helpers). Heavy imports happen inside the command functions, so
``hepavol --help`` stays fast.

Exit status: 0 success, 2 a user error (bad input, printed as ``error: ...``), 1 an internal error.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import Any

from hepavol._version import __version__

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USER_ERROR = 2


def _command_modules() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    return sorted(names)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (one subparser per command module)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks on errors"
    )
    parser = argparse.ArgumentParser(
        prog="hepavol",
        description="Volumetric follow-up of liver metastases on CT and MRI (geometry in DICOM LPS, mm).",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"hepavol {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _command_modules():
        module = importlib.import_module(f"hepavol.cli.{name}")
        module.register(sub, [common])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    from hepavol.errors import HepavolError

    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    debug = bool(getattr(args, "debug", False))
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USER_ERROR
    shown = warnings.showwarning
    if not debug:  # a Python warning is one "warning: ..." line, like hepavol's own (no file:line and source)
        _SHOWN_WARNINGS.clear()
        warnings.showwarning = _one_line_warning
    try:
        result = args.func(args)
        return EXIT_OK if result is None else int(result)
    except HepavolError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:  # a fault of the machine (full disk, permissions, read-only file system), not a bug
        if debug:
            traceback.print_exc()
        print(f"error: {os_error_message(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:
        if debug:
            traceback.print_exc()
        else:
            print(
                f"internal error: {type(exc).__name__}: {exc}\n"
                "This is a bug in hepavol. Run again with --debug to see the traceback and please report it.",
                file=sys.stderr,
            )
        return EXIT_INTERNAL
    finally:
        warnings.showwarning = shown


def os_error_message(exc: OSError) -> str:
    """``cannot write 'F': No space left on device. Free space ...`` for an OSError with the fix for its errno."""
    import errno

    fixes = {
        errno.ENOSPC: "the disk is full: free space or write to another disk; nothing partial was kept",
        errno.EDQUOT: "your disk quota is used up: free space or write to another disk",
        errno.EACCES: "your user may not access it: check its permissions (ls -l) or choose another place",
        errno.EPERM: "the operation is not permitted there: check its permissions or choose another place",
        errno.EROFS: "the file system is read-only: write to another folder",
        errno.ENOENT: "it does not exist: check the path",
        errno.EISDIR: "it is a folder: give a file name",
        errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
        errno.EIO: "the disk reported an input/output error: check the disk or network share",
    }
    what = f"'{exc.filename}'" if exc.filename else "a file"
    reason = exc.strerror or str(exc)
    fix = fixes.get(exc.errno or -1, "check the path, the free space and the permissions")
    return f"cannot use {what}: {reason}. {fix[0].upper()}{fix[1:]}."


_SHOWN_WARNINGS: set[str] = set()


def _one_line_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    """Print ``warning: MESSAGE`` once per command (the SEG and the SR of one export warn the same way)."""
    text = str(message)
    if text in _SHOWN_WARNINGS:
        return
    _SHOWN_WARNINGS.add(text)
    print(f"warning: {text}", file=sys.stderr)


def run() -> None:  # pragma: no cover - console-script shim
    sys.exit(main())
