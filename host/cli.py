"""`edge-bench` command line. One module per subcommand under edge_bench.commands.

Each command module defines `add_parser(subparsers)` and `run(args) -> int`.
Any EdgeBenchError becomes one line on stderr and its exit code (2 usage/config, 3 device).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, NoReturn, Optional

from . import __version__
from .errors import EdgeBenchError
from .render.visible import visible_lines

#: subcommand name -> module under edge_bench.commands
COMMANDS = {
    "run": "run",
    "quantize": "quantize",
    "compile": "compile",
    "explain": "explain",
    "devices": "devices",
    "deploy": "deploy",
    "history": "history",
    "compare": "compare",
    "report": "report",
    "store": "store",
    "submit": "submit",
    "worker": "worker",
    "queue": "queue",
    "cancel": "cancel",
}

EPILOG = """\
examples:
  edge-bench run                                   built-in models on this machine
  edge-bench run --devices pi4,tag:jetson --model m.tflite --variants fp32,int8
  edge-bench quantize m.tflite --variants int8 --calibration calib.npz -o out/
  edge-bench devices --check
  edge-bench compare last~1 last

exit codes: 0 ok, 1 regression found (--fail-on-regression), 2 usage or config error,
            3 some jobs failed (finished results are kept), 130 interrupted (Ctrl-C;
            143 SIGTERM; finished results are kept)
"""


class _Parser(argparse.ArgumentParser):
    """argparse, whose usage errors (which quote the arguments: `unrecognized arguments:
    postgresql://u:PW@h/db`) hide passwords and show control characters visibly."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        from .results.dburl import redact
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {visible_lines(redact(message))}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edge-bench",
        description="Benchmark TFLite/LiteRT models and their quantized variants on edge devices"
                    " (SSH boards, Android phones over adb, and this machine as `local`).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"edge-bench {__version__}")
    parser.add_argument("--verbose", "-v", action="store_true", dest="verbose_all",
                        help="show the libraries' own output (LiteRT, ai-edge-quantizer) as it"
                             " comes; otherwise it is captured and shown only with an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        try:
            mod = importlib.import_module(f".commands.{module}", __package__)
        except ImportError as e:
            if getattr(e, "name", "") and f"commands.{module}" in str(e.name):
                continue  # command not built yet
            raise
        mod.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            from .results.dburl import redact
            shown = redact(arg.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
            print(f"edge-bench: error: argument {shown!r} is not valid UTF-8 (a file name in"
                  " another encoding?); rename the file or pass a symlink with a UTF-8 name",
                  file=sys.stderr)
            return 2
    parser = build_parser()
    if not argv:
        argv = ["run"]  # the embedded default: built-in models on `local`
    args = parser.parse_args(argv)
    args.argv = ["edge-bench"] + argv
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from . import quiet
    quiet.set_verbose(bool(getattr(args, "verbose_all", False) or getattr(args, "verbose", False)))
    import signal
    from .interrupts import handling

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops as cleanly as Ctrl-C, whenever it lands
    with handling((signal.SIGTERM,), on_term):
        return _call(args)


def _call(args: argparse.Namespace) -> int:
    from . import quiet
    try:
        return int(args.func(args) or 0)
    except EdgeBenchError as e:
        print(f"edge-bench: error: {visible_lines(e)}", file=sys.stderr)
        said = quiet.take_failure_output()
        if said:  # what the library printed before it failed often says why
            print("  library output before the error:\n    " + visible_lines(said).replace("\n", "\n    "),
                  file=sys.stderr)
        return e.exit_code
    except OSError as e:
        # a path the system refuses (name too long, a loop of symlinks, an I/O error) that no
        # check above caught: still one line naming the file
        name = str(e.filename) if e.filename is not None else ""
        name = name if len(name) <= 120 else name[:120] + "..."
        print(f"edge-bench: error: {name + ': ' if name else ''}{e.strerror or e}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edge-bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
