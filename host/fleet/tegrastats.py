"""Parse NVIDIA Jetson `tegrastats` lines and INA3221 power-monitor sysfs files (host side).

The agent only collects raw text (one `tegrastats --interval 100` line, the ina3221 files); all
parsing lives here so that a new JetPack format is fixed on the host, not on every board.

Formats handled (real lines in tests/data/tegrastats/):
  JetPack 4 (L4T 32: Nano, TX2, Xavier): power as `VDD_IN 3528/3569` or `POM_5V_IN 4520/4680`
    (mW, current/average), `EMC_FREQ 1%@1600`, `GR3D_FREQ 0%@114`, `IRAM 0/252kB(lfb 252kB)`,
    `MTS fg 0% bg 3%`, temperatures `CPU@33C`, `BCPU@-45C`; without root `EMC_FREQ 0%`.
  JetPack 5/6 (L4T 35/36: Xavier, Orin): power as `VDD_IN 4966mW/4966mW`, GPU frequency per GPC
    `GR3D_FREQ 0%@[510]` / `@[305,305]`, engines `NVENC off` / `VIC_FREQ 601`, temperatures
    `cpu@45.5C tj@46C`; newer releases prefix a timestamp and add a max (`5139mW/5139mW/5139mW`,
    `cpu@52.9C/52.9C`).
Sensor readings of -256C (or below -100C) mean "absent" and are dropped.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional

_TS = re.compile(r"^\s*(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s+")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB(?: \(lfb (\d+)x(\d+)([kKMG]B)\))?")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB(?: \(cached (\d+)MB\))?")
_IRAM = re.compile(r"\bIRAM (\d+)/(\d+)kB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\](?:@(\d+))?")
_CORE = re.compile(r"^(\d+)%(?:@(\d+))?$")
_FREQ = re.compile(r"\b([A-Z][A-Z0-9_]*?)(?:_FREQ)? (\d+)%(?:@(\[[\d,]*\]|\d+))?")
_ENGINE = re.compile(r"\b(APE|NVENC\d?|NVDEC\d?|NVJPG\d?|VIC|OFA|NVDLA\d|PVA\d?(?:_FREQ)?|"
                     r"VIC_FREQ|MSENC|SE)(?:_FREQ)? (off|\d+)(?=\s|$)")
_MTS = re.compile(r"\bMTS fg (\d+)% bg (\d+)%")
_TEMP = re.compile(r"(?<![\w@])([A-Za-z][\w-]*)@(-?\d+(?:\.\d+)?)C(?:/(-?\d+(?:\.\d+)?)C)?")
_POWER = re.compile(r"(?<![\w/])([A-Z][A-Z0-9_]*) (\d+)(mW)?/(\d+)(mW)?(?:/(\d+)(mW)?)?(?=\s|$)")

#: rails that measure the whole module/board input (first one present wins)
INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "VIN")
_NOT_RAILS = {"RAM", "SWAP", "IRAM"}


def _freq(text: Optional[str]) -> Dict[str, Any]:
    if not text:
        return {"freq_mhz": None}
    if text.startswith("["):
        freqs = [int(x) for x in text.strip("[]").split(",") if x.strip().isdigit()]
        return {"freq_mhz": max(freqs) if freqs else None, "freqs_mhz": freqs}
    return {"freq_mhz": int(text)}


def parse_tegrastats(line: Optional[str]) -> Optional[Dict[str, Any]]:
    """One tegrastats line -> dict (None for None/empty). Unknown fields are ignored; a field
    that is absent from the line is absent from the dict (never a guess)."""
    if not line or not line.strip():
        return None
    text = line.strip()
    out: Dict[str, Any] = {}
    m = _TS.match(text)
    if m:
        out["timestamp"] = m.group(1)
        text = text[m.end():]
    m = _RAM.search(text)
    if m:
        out["ram"] = {"used_mb": int(m.group(1)), "total_mb": int(m.group(2))}
        if m.group(3):
            out["ram"]["lfb"] = f"{m.group(3)}x{m.group(4)}{m.group(5)}"
    m = _SWAP.search(text)
    if m:
        out["swap"] = {"used_mb": int(m.group(1)), "total_mb": int(m.group(2)),
                       "cached_mb": int(m.group(3)) if m.group(3) else None}
    m = _IRAM.search(text)
    if m:
        out["iram"] = {"used_kb": int(m.group(1)), "total_kb": int(m.group(2))}
    m = _CPU.search(text)
    if m:
        cores: List[Optional[Dict[str, Any]]] = []
        shared = int(m.group(2)) if m.group(2) else None  # old `CPU [1%,2%]@102` form
        for part in m.group(1).split(","):
            part = part.strip()
            cm = _CORE.match(part)
            if cm:
                freq = int(cm.group(2)) if cm.group(2) else shared
                cores.append({"load_pct": int(cm.group(1)), "freq_mhz": freq})
            else:  # "off" (core powered down) or an empty slot
                cores.append(None)
        out["cpu"] = cores
        online = [c for c in cores if c]
        if online:
            out["cpu_load_pct"] = round(sum(c["load_pct"] for c in online) / len(online), 1)
            freqs = [c["freq_mhz"] for c in online if c["freq_mhz"] is not None]
            out["cpu_freq_mhz_max"] = max(freqs) if freqs else None
    for fm in _FREQ.finditer(text):
        name = fm.group(1)
        if name in ("EMC", "GR3D", "GR3D2") or name.endswith("_FREQ"):
            key = name.lower()
            out[key] = {"load_pct": int(fm.group(2)), **_freq(fm.group(3))}
        elif name in ("VIC", "NVENC", "NVDEC", "NVJPG", "APE"):
            out.setdefault("engines", {})[name] = {"load_pct": int(fm.group(2)),
                                                    **_freq(fm.group(3))}
    for em in _ENGINE.finditer(text):
        name = em.group(1).replace("_FREQ", "")
        value = em.group(2)
        out.setdefault("engines", {}).setdefault(
            name, "off" if value == "off" else {"freq_mhz": int(value)})
    m = _MTS.search(text)
    if m:
        out["mts"] = {"fg_pct": int(m.group(1)), "bg_pct": int(m.group(2))}
    temps: Dict[str, float] = {}
    for tm in _TEMP.finditer(text):
        value = float(tm.group(2))
        if value <= -100.0:  # -256C: sensor absent
            continue
        temps[tm.group(1)] = value
    if temps:
        out["temps_c"] = temps
        real = [v for k, v in temps.items() if "pmic" not in k.lower()]
        out["temp_max_c"] = max(real) if real else None
    rails: Dict[str, Dict[str, Optional[int]]] = {}
    for pm in _POWER.finditer(text):
        name = pm.group(1)
        if name in _NOT_RAILS:
            continue
        rails[name] = {"cur_mw": int(pm.group(2)), "avg_mw": int(pm.group(4)),
                       "max_mw": int(pm.group(6)) if pm.group(6) else None}
    if rails:
        out["power_mw"] = rails
        out["input_power_mw"] = next((rails[r]["cur_mw"] for r in INPUT_RAILS if r in rails), None)
    return out


_IIO_NAME = re.compile(r"(.*/iio:device\d+)/rail_name_(\d+)$")
_HWMON_LABEL = re.compile(r"(.*/hwmon\d+)/in(\d+)_label$")


def parse_power_sysfs(files: Optional[Dict[str, str]]) -> Dict[str, int]:
    """INA3221 sysfs files {path: text} -> {rail name: mW}.

    JetPack 4 (ina3221x iio): `rail_name_N` + `in_powerN_input` (mW).
    JetPack 5/6 (ina3221 hwmon): `inN_label` + `inN_input` (mV) + `currN_input` (mA).
    Channels labelled NC (not connected) or "sum of ..." are skipped."""
    if not files:
        return {}
    out: Dict[str, int] = {}
    for path, text in sorted(files.items()):
        label = (text or "").strip()
        if not label or label.upper() == "NC" or label.lower().startswith("sum"):
            continue
        m = _IIO_NAME.match(path)
        if m:
            power = _int(files.get(f"{m.group(1)}/in_power{m.group(2)}_input"))
            if power is not None:
                out[label] = power
            continue
        m = _HWMON_LABEL.match(path)
        if m:
            mv = _int(files.get(f"{m.group(1)}/in{m.group(2)}_input"))
            ma = _int(files.get(f"{m.group(1)}/curr{m.group(2)}_input"))
            if mv is not None and ma is not None:
                out[label] = int(round(mv * ma / 1000.0))
    return out


def _int(text: Optional[str]) -> Optional[int]:
    try:
        return int(str(text).strip()) if text is not None else None
    except ValueError:
        return None


def parse_nvpmodel(text: Optional[str]) -> Optional[Dict[str, Any]]:
    """`nvpmodel -q` ("NV Power Mode: MAXN\\n0") -> {"mode": "MAXN", "id": 0}."""
    if not text:
        return None
    mode, mode_id = None, None
    for line in text.splitlines():
        line = line.strip()
        if line.lower().startswith("nv power mode"):
            mode = line.split(":", 1)[1].strip() if ":" in line else None
        elif line.isdigit() and mode_id is None:
            mode_id = int(line)
    if mode is None and mode_id is None:
        return None
    return {"mode": mode, "id": mode_id}
