"""Keep the libraries' own output off the user's terminal.

LiteRT's C++ core writes `INFO: Created TensorFlow Lite XNNPACK delegate for CPU.` straight to
file descriptor 2, and ai-edge-quantizer prints reports and progress bars through Python. Both
are captured while a library call runs (`with quiet("quantizing m int8"):`): at the file
descriptor level (dup2 of fds 1 and 2 onto a temporary file) and at the Python level
(sys.stdout / sys.stderr). What was captured is kept in memory; `--verbose` shows it as it
happens, and when the call raises, the output is kept so that the error line can show it.

The live display writes to its own duplicate of the terminal's descriptor (`terminal_file`), so
a capture never swallows a frame of the progress display drawn by its refresh thread.

Converters (TFLiteConverter, torch.export, litert-torch) use `captured_output(what)`, which
also silences Python warnings and hands the text back, and `noise_free(text)` to keep what
is worth showing when a conversion fails.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import threading
import warnings
from collections import deque
from typing import Any, Deque, Iterator, List, Optional, TextIO


class Captured:
    """What one `quiet()` block captured; `text` is set when the block ends."""
    text: str = ""

_lock = threading.RLock()
_log: Deque[str] = deque(maxlen=200)
_verbose = False
_failure: Optional[str] = None
_depth = 0
#: a progress bar's frame (tqdm: " 24%|##4       | 292/1200"): says nothing about an error
_PROGRESS_BAR = re.compile(r"\d+%\|")


def set_verbose(on: bool) -> None:
    """Show captured library output on stderr as it is captured (`--verbose`)."""
    global _verbose
    _verbose = on


def captured() -> str:
    """Everything captured so far in this process (the last 200 captures)."""
    return "".join(_log)


def take_failure_output(max_lines: int = 20) -> str:
    """The library output captured by the call that raised last (once), its last lines."""
    global _failure
    text, _failure = _failure, None
    lines = [ln.strip() for ln in re.split(r"[\r\n]+", text or "")]
    lines = [ln for ln in lines if ln and not _PROGRESS_BAR.search(ln)]
    return "\n".join(lines[-max_lines:])


def _flush_c_stdio() -> None:
    """printf output sits in libc's buffer while fd 1 is a file: flush it into the capture."""
    try:
        import ctypes
        ctypes.CDLL(None).fflush(None)
    except Exception:  # noqa: BLE001 - no libc (unusual platform): Python-level capture only
        pass


@contextlib.contextmanager
def quiet(what: str = "") -> Iterator[Captured]:
    """Capture what library code writes to fds 1/2 and to sys.stdout/sys.stderr meanwhile."""
    global _depth, _failure
    with _lock:
        cap = Captured()
        if _depth:  # nested: the outer capture already holds the descriptors
            yield cap
            return
        _depth += 1
        for f in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                f.flush()
        tmp = tempfile.TemporaryFile(mode="w+b")
        saved = []
        try:
            for fd in (1, 2):
                try:
                    saved.append((fd, os.dup(fd)))
                    os.dup2(tmp.fileno(), fd)
                except OSError:  # that descriptor is closed: nothing to capture there
                    pass
        except BaseException:
            _restore(saved)
            tmp.close()
            _depth -= 1
            raise
        py_out, py_err = io.StringIO(), io.StringIO()
        failed = False
        try:
            with contextlib.redirect_stdout(py_out), contextlib.redirect_stderr(py_err):
                yield cap
        except BaseException:
            failed = True
            raise
        finally:
            _flush_c_stdio()
            _restore(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace") + py_out.getvalue() + py_err.getvalue()
            tmp.close()
            _depth -= 1
            cap.text = text
            if text:
                _log.append((f"[{what}]\n" if what else "") + text)
                if _verbose:
                    sys.stderr.write(text if text.endswith("\n") else text + "\n")
                    sys.stderr.flush()
            if failed:
                _failure = text


@contextlib.contextmanager
def captured_output(what: str = "") -> Iterator[List[str]]:
    """`quiet(what)` with Python warnings silenced too: when the block ends the captured text
    (fds 1 and 2, Python and C++ writes) is the list's one item, to show if the call failed."""
    out: List[str] = []
    cap = Captured()
    try:
        with warnings.catch_warnings(), quiet(what) as cap:
            warnings.simplefilter("ignore")
            yield out
    finally:
        out.append(cap.text)


#: absl/glog notices a converter prints on every call: never the reason it failed
_NOTICES = ("W0000", "I0000", "WARNING: All log messages")


def noise_free(text: str, limit: int = 1500) -> str:
    """The last lines of a converter's captured output without its routine notices."""
    keep = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(_NOTICES)]
    return "\n".join(keep[-30:])[-limit:]


def _restore(saved: Any) -> None:
    for fd, dup in saved:
        with contextlib.suppress(OSError):
            os.dup2(dup, fd)
        with contextlib.suppress(OSError):
            os.close(dup)


def terminal_file(stream: TextIO) -> TextIO:
    """A private text stream on a duplicate of `stream`'s descriptor (the terminal), unaffected
    by captures; `stream` itself when it has no descriptor (tests, StringIO)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return stream
    try:
        return os.fdopen(os.dup(fd), "w", encoding=getattr(stream, "encoding", None) or "utf-8",
                         errors="replace", buffering=1, closefd=True)
    except OSError:
        return stream
