"""Headless Chromium for tests: load a page (file://), return the DOM as Chromium built it, a
screenshot, and what Chromium logged (script errors show up there as "Uncaught ...")."""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import List

import numpy as np
from conftest import missing_system

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--mute-audio",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not exe:
        missing_system("chromium is not installed (apt-get install -y chromium); .ci/run installs it")
    return exe


@dataclass
class Rendered:
    dom: str
    png: Path
    log: str

    def svg_paths(self) -> List[str]:
        """The `d` of every <path> and the `points` of every polygon/polyline in the DOM."""
        return re.findall(r'<path\b[^>]*\bd="([^"]*)"', self.dom) + \
            re.findall(r'<poly(?:gon|line)\b[^>]*\bpoints="([^"]*)"', self.dom)

    def script_errors(self) -> List[str]:
        return [ln for ln in self.log.splitlines()
                if "Uncaught" in ln or ("CONSOLE" in ln and "error" in ln.lower())]


def render(page: Path, tmp: Path, width: int = 1280, height: int = 1600) -> Rendered:
    exe = chromium()
    profile = tmp / "chrome-profile"
    shot = tmp / (page.stem + ".png")
    common = FLAGS + [f"--user-data-dir={profile}", f"--window-size={width},{height}"]
    dom = subprocess.run([exe, *common, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=180)
    pic = subprocess.run([exe, *common, f"--screenshot={shot}", page.as_uri()],
                         capture_output=True, text=True, timeout=180)
    assert shot.exists(), f"no screenshot; chromium exited {pic.returncode}: {pic.stderr[-2000:]}"
    return Rendered(dom.stdout, shot, dom.stderr + pic.stderr)


def inked(png: Path) -> float:
    """Fraction of the screenshot's pixels that differ from its most common colour."""
    from PIL import Image
    img = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3)
    _, counts = np.unique(img, axis=0, return_counts=True)
    return 1.0 - counts.max() / img.shape[0]
