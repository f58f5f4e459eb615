"""Run a command in a REAL terminal of a given size and read the screen: tmux (a full terminal
emulator on a pty) with its own server socket, `capture-pane` for what a person would see.

    with Terminal(80, 40) as t:
        t.run("edge-bench run ...")
        frames = t.wait_done(timeout=300)     # every screen seen while it ran
        text = t.scrollback()                 # the whole output, as on the screen
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional

from conftest import missing_system

DONE = "__TTY_DONE__"


def need_tmux() -> str:
    tmux = shutil.which("tmux")
    if not tmux:
        missing_system("tmux is not installed (apt-get install -y tmux); .ci/run installs it")
    return tmux


class Terminal:
    def __init__(self, width: int, height: int = 40, env: Optional[Dict[str, str]] = None,
                 cwd: Optional[Path] = None) -> None:
        self.tmux = need_tmux()
        self.width, self.height = width, height
        self.socket = f"eb-tty-{uuid.uuid4().hex[:10]}"
        self.session = "t"
        self.env = env or {}
        self.cwd = cwd
        self.frames: List[str] = []

    def _tmux(self, *args: str, check: bool = True) -> str:
        p = subprocess.run([self.tmux, "-L", self.socket, *args], capture_output=True, text=True,
                           timeout=30)
        if check and p.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {p.stderr}")
        return p.stdout

    def __enter__(self) -> "Terminal":
        return self

    def __exit__(self, *exc: object) -> None:
        self._tmux("kill-server", check=False)

    def run(self, command: str) -> None:
        exports = " ".join(f"export {k}={shlex.quote(v)};" for k, v in self.env.items())
        cd = f"cd {shlex.quote(str(self.cwd))};" if self.cwd else ""
        # the marker is split so that the echoed command line itself never matches it
        script = f"{cd} {exports} {command}; echo __TTY_''DONE__ rc=$?; sleep 3600"
        env = dict(os.environ, TERM="xterm-256color")
        # the size comes from the terminal, as for a person (pytest-xdist's workers export
        # COLUMNS=80 LINES=24, which would win over the pane's real size)
        for k in ("NO_COLOR", "COLUMNS", "LINES"):
            env.pop(k, None)
        subprocess.run([self.tmux, "-L", self.socket, "-f", "/dev/null", "new-session", "-d",
                        "-s", self.session, "-x", str(self.width), "-y", str(self.height),
                        "bash", "--norc", "--noprofile", "-c", script],
                       check=True, env=env, timeout=30)
        self._tmux("set-option", "-t", self.session, "history-limit", "5000")

    def screen(self, escapes: bool = False) -> str:
        return self._tmux("capture-pane", "-p", *(["-e"] if escapes else []), "-t", self.session)

    def wait_done(self, timeout: float = 300, every: float = 0.25) -> List[str]:
        """Poll the screen until the command has finished; every distinct screen is kept."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.screen()
            if not self.frames or self.frames[-1] != s:
                self.frames.append(s)
            if DONE in s:
                return self.frames
            time.sleep(every)
        raise AssertionError(f"command did not finish in {timeout} s; screen:\n{self.screen()}")

    def exit_code(self) -> int:
        for line in self.scrollback().splitlines():
            if line.startswith(DONE):
                return int(line.split("rc=")[1])
        raise AssertionError("no exit code on the screen")

    def scrollback(self, escapes: bool = False) -> str:
        """Everything the terminal shows and scrolled off, as lines the width of the screen."""
        return self._tmux("capture-pane", "-p", *(["-e"] if escapes else []), "-S", "-",
                          "-E", "-", "-t", self.session)


def ansi_to_png(ansi: str, out: Path, width: int, title: str, tmp: Path) -> Path:
    """A picture of terminal text (with its colours): rich draws it as SVG, Chromium renders
    the SVG to PNG."""
    from rich.console import Console
    from rich.text import Text
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        missing_system("chromium is not installed (apt-get install -y chromium); .ci/run installs it")
    console = Console(record=True, width=width, file=open(os.devnull, "w"), force_terminal=True,
                      color_system="truecolor")
    lines = ansi.rstrip("\n").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    console.print(Text.from_ansi("\n".join(lines)), soft_wrap=True)
    svg = console.export_svg(title=title)
    svg_path = tmp / (out.stem + ".svg")
    svg_path.write_text(svg, encoding="utf-8")
    # the SVG's own size decides the window: read it from the root element
    import re
    m = re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg)
    w, h = (int(float(m.group(1))) + 1, int(float(m.group(2))) + 1) if m else (1200, 800)
    page = tmp / (out.stem + ".html")
    page.write_text(f'<!DOCTYPE html><html><body style="margin:0;background:#fff">'
                    f'<img src="{svg_path.name}" width="{w}" height="{h}"></body></html>')
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    f"--user-data-dir={tmp / 'chrome-profile'}", f"--window-size={w},{h}",
                    "--hide-scrollbars", f"--screenshot={out}", page.as_uri()],
                   capture_output=True, timeout=180)
    assert out.exists(), "chromium wrote no screenshot"
    return out
