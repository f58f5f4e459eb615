"""devices.yaml: load, validate, layer (defaults < file < EDGE_BENCH_* env < flags).

Every error names the file, the line and the field, and says what to do.
"""
from __future__ import annotations

import math
import os
import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml

from .errors import ConfigError, UsageError

CONFIG_VERSION = 1
TRANSPORTS = ("local", "ssh", "adb")
RUNNERS = ("python", "benchmark_model")
RUNTIMES = ("auto", "ai_edge_litert", "tflite_runtime", "tensorflow")

#: built-in defaults, the lowest layer
DEFAULTS: Dict[str, Any] = {
    "workdir": "~/.cache/edge-bench",
    "timeout_s": 600.0,
    "idle_timeout_s": 120.0,
    "connect_timeout_s": 10.0,
    "retries": 2,
    "retry_backoff_s": 1.0,
    "runtime": "auto",
    "xnnpack": True,
}

# field name -> (accepted python types, help text)
_FIELDS: Dict[str, Tuple[tuple, str]] = {
    "transport": ((str,), "one of local, ssh, adb"),
    "host": ((str,), "hostname, IP or ~/.ssh/config Host alias"),
    "port": ((int,), "TCP port number"),
    "user": ((str,), "login name"),
    "key": ((str,), "path to a private key file"),
    "known_hosts": ((str,), "path to a known_hosts file"),
    "host_key": ((str,), "pinned host key, e.g. 'ssh-ed25519 AAAA...'"),
    "ssh_config": ((str,), "path to an ssh_config file (default ~/.ssh/config)"),
    "python": ((str, list), "interpreter command on the device, e.g. python3 or a venv path"),
    "workdir": ((str,), "directory on the device for the agent and models"),
    "timeout_s": ((int, float), "seconds a whole job may take on this device"),
    "idle_timeout_s": ((int, float), "seconds without any agent output before the device counts as stalled"),
    "connect_timeout_s": ((int, float), "seconds to wait for a connection"),
    "retries": ((int,), "connection attempts after the first one fails"),
    "retry_backoff_s": ((int, float), "first backoff between connection attempts, doubled each time"),
    "tags": ((list,), "list of tags, e.g. [pi, arm64]"),
    "runtime": ((str,), "auto, ai_edge_litert, tflite_runtime or tensorflow"),
    "xnnpack": ((bool,), "true to use the XNNPACK delegate (the runtimes' default)"),
    "serial": ((str,), "adb serial or host:port"),
    "adb_host": ((str,), "adb server host (default 127.0.0.1)"),
    "adb_port": ((int,), "adb server port (default 5037)"),
    "adb_path": ((str,), "path to the adb client binary"),
    "runner": ((str,), "python or benchmark_model"),
    "benchmark_model": ((str,), "host path of TFLite's benchmark_model binary for this device"),
    "taskset": ((str,), "CPU mask for taskset on the device, e.g. f0"),
    "env": ((dict,), "environment variables for the agent on the device"),
    "cooldown_temp_c": ((int, float), "wait until the SoC is below this temperature before timing"),
    "cooldown_max_s": ((int, float), "give up waiting for cooldown after this many seconds"),
    "lock_wait_s": ((int, float), "seconds to wait for a device busy with another benchmark (0: fail fast)"),
    "bootstrap": ((str,), "bootstrap script for `edge-bench deploy --bootstrap`: pi, jetson, none,"
                          " or a path to a script on this host"),
    "delegate": ((str,), "benchmark_model's own delegate: xnnpack (default), gpu, nnapi or none;"
                         " or PATH[:k=v,...] of an external delegate .so: a delegate:FILE row"),
    "description": ((str,), "free text"),
    "lab": ((str,), "the lab whose `edge-bench worker --lab NAME` runs this device's queued jobs"
                    " (default: default)"),
}


#: devices.yaml larger than this is refused before it is parsed (a fleet of hundreds of
#: devices is a few tens of KB)
MAX_CONFIG_BYTES = 1 << 20

#: numeric fields: (smallest, largest, smallest is allowed). Every number must be finite.
LIMITS: Dict[str, Tuple[float, float, bool]] = {
    "timeout_s": (0, 7 * 86400, False),
    "idle_timeout_s": (0, 7 * 86400, False),
    "connect_timeout_s": (0, 3600, False),
    "retries": (0, 100, True),
    "retry_backoff_s": (0, 3600, True),
    "port": (1, 65535, True),
    "adb_port": (1, 65535, True),
    "cooldown_temp_c": (0, 150, False),
    "cooldown_max_s": (0, 86400, True),
    "lock_wait_s": (0, 86400, True),
}

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_number(value: Any, name: str, where: str) -> None:
    """Raise ConfigError unless `value` is finite and inside LIMITS[name]; `where` starts the
    message (a file:line and field, an environment variable or a flag)."""
    lo, hi, lo_ok = LIMITS[name]
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} is {value!r}; expected a finite number")
    if value > hi or value < lo or (value == lo and not lo_ok):
        rel = ">=" if lo_ok else ">"
        raise ConfigError(f"{where} is {value!r}; expected a number {rel} {lo:g} and <= {hi:g}")


def check_text(value: str, where: str) -> None:
    """Text fields must not carry control characters (newlines, NUL, escapes)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ConfigError(f"{where} contains a control character (newline, tab, NUL...);"
                          " remove it")


@dataclass(frozen=True)
class Device:
    """One device of the fleet, all layers applied."""

    name: str
    transport: str
    workdir: str = DEFAULTS["workdir"]
    timeout_s: float = DEFAULTS["timeout_s"]
    idle_timeout_s: float = DEFAULTS["idle_timeout_s"]
    connect_timeout_s: float = DEFAULTS["connect_timeout_s"]
    retries: int = DEFAULTS["retries"]
    retry_backoff_s: float = DEFAULTS["retry_backoff_s"]
    runtime: str = DEFAULTS["runtime"]
    xnnpack: bool = DEFAULTS["xnnpack"]
    tags: Tuple[str, ...] = ()
    python: Tuple[str, ...] = ()
    host: Optional[str] = None
    port: Optional[int] = None
    user: Optional[str] = None
    key: Optional[str] = None
    known_hosts: Optional[str] = None
    host_key: Optional[str] = None
    ssh_config: Optional[str] = None
    serial: Optional[str] = None
    adb_host: Optional[str] = None
    adb_port: Optional[int] = None
    adb_path: Optional[str] = None
    runner: str = "python"
    benchmark_model: Optional[str] = None
    taskset: Optional[str] = None
    env: Tuple[Tuple[str, str], ...] = ()
    cooldown_temp_c: Optional[float] = None
    cooldown_max_s: Optional[float] = None
    lock_wait_s: float = 0.0
    bootstrap: Optional[str] = None
    delegate: Optional[str] = None
    description: Optional[str] = None
    lab: str = "default"
    source: str = "<built-in>"  # "file:line" where the device was defined

    def with_overrides(self, **kw: Any) -> "Device":
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


@dataclass
class Fleet:
    devices: Dict[str, Device]
    path: Optional[Path] = None

    def select(self, spec: Optional[str]) -> List[Device]:
        """`pi4,jetson`, `tag:arm64`, `all`, or None (= local)."""
        if not spec:
            spec = "local"
        chosen: List[Device] = []
        for part in [p.strip() for p in spec.split(",") if p.strip()]:
            if part == "all":
                matches = list(self.devices.values())
            elif part.startswith("tag:"):
                tag = part[4:]
                matches = [d for d in self.devices.values() if tag in d.tags]
                if not matches:
                    known = sorted({t for d in self.devices.values() for t in d.tags})
                    raise UsageError(f"no device has tag {tag!r}"
                                     f" (tags in {self._where()}: {', '.join(known) or 'none'})")
            elif part in self.devices:
                matches = [self.devices[part]]
            else:
                raise UsageError(f"unknown device {part!r}"
                                 f" (devices in {self._where()}: {', '.join(sorted(self.devices))})",
                                 hint="add it to devices.yaml or pick one of those")
            for d in matches:
                if d not in chosen:
                    chosen.append(d)
        if not chosen:
            raise UsageError("--devices selected no device")
        return chosen

    def _where(self) -> str:
        return str(self.path) if self.path else "the built-in fleet"


def local_device() -> Device:
    return Device(name="local", transport="local", source="<built-in>")


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key and value and refuses aliases
    (`*name`): a few nested aliases expand to billions of nodes (the "billion laughs")."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise ConfigError(f"{self.name}:{event.start_mark.line + 1}: YAML alias"
                              f" *{event.anchor} is not allowed in devices.yaml",
                              hint="write the value out, or put shared settings under defaults:")
        return super().compose_node(parent, index)


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> Dict[str, Any]:
    mapping = _LinedDict()
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise ConfigError(f"{loader.name}:{key_node.start_mark.line + 1}: a key must be a"
                              " plain word, not a list or mapping")
        try:
            key = loader.construct_object(key_node, deep=True)
            mapping[key] = loader.construct_object(value_node, deep=True)
        except ValueError:  # an integer past Python's 4300-digit conversion limit
            raise ConfigError(f"{loader.name}:{key_node.start_mark.line + 1}: field"
                              f" {_shown(key_node.value)[:60]}: the number is far too large") from None
        if key in mapping.lines:
            raise ConfigError(f"{loader.name}:{key_node.start_mark.line + 1}: duplicate key {key!r}")
        mapping.lines[key] = key_node.start_mark.line + 1
    mapping.line = node.start_mark.line + 1
    return mapping


class _LinedDict(dict):
    def __init__(self) -> None:
        super().__init__()
        self.lines: Dict[Any, int] = {}
        self.line = 0


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line(d: Any, key: Any) -> int:
    if isinstance(d, _LinedDict):
        return d.lines.get(key, d.line)
    return 0


def find_config(explicit: Optional[str]) -> Optional[Path]:
    """--config > EDGE_BENCH_CONFIG > ./devices.yaml > ~/.config/edge-bench/devices.yaml."""
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise ConfigError(f"{p}: no such devices file",
                              hint="pass --config PATH to an existing devices.yaml")
        return p
    env = os.environ.get("EDGE_BENCH_CONFIG")
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise ConfigError(f"{p}: no such devices file (from EDGE_BENCH_CONFIG)")
        return p
    for cand in (Path("devices.yaml"), Path.home() / ".config" / "edge-bench" / "devices.yaml"):
        if cand.is_file():
            return cand
    return None


def load_fleet(path: Optional[Path], env: Optional[Mapping[str, str]] = None) -> Fleet:
    """Load devices.yaml (or only `local` when there is none) and apply EDGE_BENCH_* env."""
    env = os.environ if env is None else env
    devices: Dict[str, Device] = {}
    if path is not None:
        devices = _parse_file(path)
    if "local" not in devices:
        devices["local"] = local_device()
    devices = {n: _apply_env(d, env) for n, d in devices.items()}
    return Fleet(devices=devices, path=path)


def _apply_env(d: Device, env: Mapping[str, str]) -> Device:
    """EDGE_BENCH_TIMEOUT_S etc. apply to every device (above the file, below flags)."""
    over: Dict[str, Any] = {}
    for name in ("timeout_s", "idle_timeout_s", "connect_timeout_s", "retry_backoff_s"):
        v = env.get("EDGE_BENCH_" + name.upper())
        if v:
            try:
                over[name] = float(v)
            except ValueError:
                raise ConfigError(f"EDGE_BENCH_{name.upper()}={v!r}: expected a number of seconds")
            check_number(over[name], name, f"EDGE_BENCH_{name.upper()}")
    v = env.get("EDGE_BENCH_RETRIES")
    if v:
        if not (v.isascii() and v.isdigit()):
            raise ConfigError(f"EDGE_BENCH_RETRIES={v!r}: expected a whole number")
        over["retries"] = int(v)
        check_number(over["retries"], "retries", "EDGE_BENCH_RETRIES")
    v = env.get("EDGE_BENCH_RUNTIME")
    if v:
        if v not in RUNTIMES:
            raise ConfigError(f"EDGE_BENCH_RUNTIME={v!r}: expected one of {', '.join(RUNTIMES)}")
        over["runtime"] = v
    return d.with_overrides(**over) if over else d


def _parse_file(path: Path) -> Dict[str, Device]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}")
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES >> 20} MB; not a devices.yaml",
                          hint="pass --config PATH to the right file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {e.start}); not a devices.yaml",
                          hint="pass --config PATH to the right file")
    try:
        loader = _LineLoader(text)
        loader.name = str(path)
        try:
            doc = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else 0
        raise ConfigError(f"{path}:{line}: not valid YAML: {e.problem or e.context}",
                          hint="fix the syntax (indentation, colons, quotes)")
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}")
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply; not a devices.yaml")
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}:1: expected a mapping with 'version: 1' and 'devices:'")
    f = str(path)
    unknown_top = set(doc) - {"version", "defaults", "devices"}
    if unknown_top:
        k = sorted(unknown_top)[0]
        raise ConfigError(f"{f}:{_line(doc, k)}: unknown top-level key {k!r}",
                          hint="allowed: version, defaults, devices")
    version = doc.get("version")
    if version is None:
        raise ConfigError(f"{f}:1: field 'version' is missing", hint="add 'version: 1' at the top")
    if version != CONFIG_VERSION:
        raise ConfigError(f"{f}:{_line(doc, 'version')}: field 'version' is {version!r}, this edge-bench"
                          f" reads version {CONFIG_VERSION}",
                          hint="upgrade edge-bench or rewrite the file for version 1")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{f}:{_line(doc, 'defaults')}: field 'defaults' must be a mapping")
    _check_fields(f, "defaults", defaults, allow_transport=False)
    devs = doc.get("devices")
    if not isinstance(devs, dict) or not devs:
        raise ConfigError(f"{f}:{_line(doc, 'devices')}: field 'devices' must be a non-empty mapping"
                          " of device name -> settings")
    out: Dict[str, Device] = {}
    for name, spec in devs.items():
        where = f"{f}:{_line(devs, name)}"
        if not isinstance(name, str) or not name or "," in name \
                or any(c.isspace() or not c.isprintable() for c in name):
            raise ConfigError(f"{where}: device name {name!r} must be a non-empty word without"
                              " spaces or commas")
        if spec is None:
            spec = _LinedDict()
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: device {name!r} must be a mapping of settings")
        _check_fields(f, f"devices.{name}", spec, allow_transport=True)
        merged: Dict[str, Any] = dict(defaults)
        merged.update(spec)
        out[name] = _make_device(name, merged, spec, f, where)
    return out


def _shown(key: Any) -> str:
    """A key as written, or quoted with escapes when it holds a newline or another control
    character (an error message stays one line, and shows where the odd character is)."""
    text = str(key)
    return text if text.isprintable() else repr(text)


def _check_fields(f: str, prefix: str, spec: Dict[str, Any], allow_transport: bool) -> None:
    for key, value in spec.items():
        line = _line(spec, key)
        if key not in _FIELDS or (key == "transport" and not allow_transport):
            raise ConfigError(f"{f}:{line}: unknown field {prefix}.{_shown(key)}",
                              hint="valid fields: " + ", ".join(sorted(_FIELDS)))
        types, help_ = _FIELDS[key]
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            raise ConfigError(f"{f}:{line}: field {prefix}.{key} is {value!r}; expected {help_}")
        if key == "tags" and not all(isinstance(t, str) and t and not any(c.isspace() or c == ","
                                                                           for c in t)
                                     for t in value):
            raise ConfigError(f"{f}:{line}: field {prefix}.tags must be a list of words")
        if key == "python" and isinstance(value, list) and not all(isinstance(t, str) for t in value):
            raise ConfigError(f"{f}:{line}: field {prefix}.python must be a string or a list of strings")
        if key in LIMITS:
            check_number(value, key, f"{f}:{line}: field {prefix}.{key}")
        if isinstance(value, str):
            check_text(value, f"{f}:{line}: field {prefix}.{key}")
        if key == "python" and isinstance(value, list):
            for t in value:
                check_text(t, f"{f}:{line}: field {prefix}.python")
        if key == "workdir" and not value.strip():
            raise ConfigError(f"{f}:{line}: field {prefix}.workdir is empty",
                              hint="set it to a directory on the device, e.g. ~/.cache/edge-bench")
        if key == "env":
            _check_env(f, line, prefix, value)
        if key == "runtime" and value not in RUNTIMES:
            raise ConfigError(f"{f}:{line}: field {prefix}.runtime is {value!r}; expected one of"
                              f" {', '.join(RUNTIMES)}")
        if key == "delegate" and value not in ("xnnpack", "gpu", "nnapi", "none"):
            from edge_bench_agent.accel_spec import parse_delegate
            try:  # a path: an external delegate .so on the device, one more row per task
                if "/" not in value:
                    raise ValueError("not a path")
                parse_delegate(value)
            except ValueError:
                raise ConfigError(f"{f}:{line}: field {prefix}.delegate is {value!r}; expected"
                                  " xnnpack, gpu, nnapi, none or the path of an external"
                                  " delegate .so on the device (PATH[:key=value,...])") from None
        if key == "lab" and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,40}", value):
            raise ConfigError(f"{f}:{line}: field {prefix}.lab is {value!r}; expected a word of"
                              " letters, digits, _ . - (up to 41 characters)")
        if key == "runner" and value not in RUNNERS:
            raise ConfigError(f"{f}:{line}: field {prefix}.runner is {value!r}; expected one of"
                              f" {', '.join(RUNNERS)}")


def _check_env(f: str, line: int, prefix: str, env: Dict[Any, Any]) -> None:
    for k, v in env.items():
        where = f"{f}:{_line(env, k) or line}: field {prefix}.env.{_shown(k)}"
        if not isinstance(k, str) or not _ENV_NAME.match(k):
            raise ConfigError(f"{where}: {k!r} is not an environment variable name"
                              " (letters, digits and _, not starting with a digit)")
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{where} is {v!r}; expected text or a finite number")
        if not isinstance(v, (str, int, float, bool)):
            kind = "mapping" if isinstance(v, dict) else type(v).__name__
            raise ConfigError(f"{where} is a {kind}; expected text or a number",
                              hint="quote it: NAME: 'value'")
        if isinstance(v, str):
            check_text(v, where)


def _make_device(name: str, m: Dict[str, Any], spec: Dict[str, Any], f: str, where: str) -> Device:
    transport = m.get("transport")
    if transport is None:
        raise ConfigError(f"{where}: field devices.{name}.transport is missing",
                          hint="set transport: local, ssh or adb")
    if transport not in TRANSPORTS:
        raise ConfigError(f"{f}:{_line(spec, 'transport')}: field devices.{name}.transport is"
                          f" {transport!r}; expected one of {', '.join(TRANSPORTS)}")
    if transport == "ssh" and not m.get("host"):
        raise ConfigError(f"{where}: field devices.{name}.host is missing (needed for transport ssh)",
                          hint="set host: to a hostname, IP or ~/.ssh/config alias")
    if m.get("runner") == "benchmark_model" and not m.get("benchmark_model"):
        raise ConfigError(f"{where}: field devices.{name}.benchmark_model is missing (needed for"
                          " runner: benchmark_model)",
                          hint="download TFLite's benchmark_model for the phone's ABI once and"
                               " set benchmark_model: to its path on this host")
    if transport == "adb" and not m.get("serial"):
        raise ConfigError(f"{where}: field devices.{name}.serial is missing (needed for transport adb)",
                          hint="set serial: to the output of `adb devices` or host:port")
    py = m.get("python")
    python: Tuple[str, ...] = ()
    if isinstance(py, str):
        python = tuple(shlex.split(py))
    elif isinstance(py, list):
        python = tuple(py)
    kw: Dict[str, Any] = {k: v for k, v in m.items() if k not in ("python", "tags", "env")}
    kw["tags"] = tuple(m.get("tags") or ())
    kw["python"] = python
    kw["env"] = tuple(sorted((str(k), str(v)) for k, v in (m.get("env") or {}).items()))
    if kw.get("delegate") == "none":
        kw["xnnpack"] = False
    if transport == "adb" and "workdir" not in spec:
        kw["workdir"] = "/data/local/tmp/edge-bench"
    for k in ("timeout_s", "idle_timeout_s", "connect_timeout_s", "retry_backoff_s",
              "cooldown_temp_c", "cooldown_max_s", "lock_wait_s"):
        if k in kw and kw[k] is not None:
            kw[k] = float(kw[k])
    return Device(name=name, source=where, **kw)
