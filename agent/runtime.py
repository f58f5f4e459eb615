"""Finding a TFLite runtime in this Python and making interpreters with it."""
from __future__ import annotations

import importlib
import platform
import sys
from typing import Any, Dict, List, Optional, Tuple

try:
    import numpy as np
except Exception:  # noqa: BLE001 - reported in hello / as NoRuntime, never a bare traceback
    np = None  # type: ignore[assignment]

from .facts import collect_device_info
from .protocol import AGENT_VERSION, NO_RUNTIME, AgentError

# (name, module, package for the version, what to install)
RUNTIMES: Tuple[Tuple[str, str, str, str], ...] = (
    ("ai-edge-litert", "ai_edge_litert.interpreter", "ai_edge_litert",
     "pip install ai-edge-litert"),
    ("tflite-runtime", "tflite_runtime.interpreter", "tflite_runtime",
     "pip install tflite-runtime 'numpy<2'"),
    ("tensorflow", "tensorflow.lite", "tensorflow", "pip install tensorflow"),
)
_RUNTIME_ALIASES: Dict[str, str] = {"litert": "ai-edge-litert", "tflite": "tflite-runtime",
                                    "tf": "tensorflow"}
INSTALL_HINT = ("install a TFLite runtime into this Python: `pip install ai-edge-litert` "
                "(preferred, Python 3.10-3.13), or `pip install tflite-runtime 'numpy<2'` "
                "(tflite-runtime needs numpy<2), or tensorflow")


class Runtime:
    """One imported TFLite runtime: its Interpreter class and OpResolverType enum."""

    def __init__(self, name: str, module: str, version: Optional[str],
                 interpreter_cls: Any, resolver_enum: Any) -> None:
        self.name = name
        self.module = module
        self.version = version
        self.interpreter_cls = interpreter_cls
        self.resolver_enum = resolver_enum

    def describe(self) -> Dict[str, Any]:
        return {"name": self.name, "module": self.module, "version": self.version}

    def make(self, model_path: str, threads: Optional[int], xnnpack: bool,
             delegates: Optional[List[Any]] = None) -> Any:
        """The Interpreter; `delegates` (external ones, agent/delegate.py) are applied by its
        constructor, before the default delegates, which come at allocate_tensors."""
        kwargs: Dict[str, Any] = {"model_path": model_path}
        if delegates:
            kwargs["experimental_delegates"] = list(delegates)
        if threads is not None:
            kwargs["num_threads"] = int(threads)
        if not xnnpack:
            if self.resolver_enum is None:
                raise AgentError("ModelLoadError", "runtime %s cannot turn XNNPACK off "
                                 "(no OpResolverType)" % self.name)
            kwargs["experimental_op_resolver_type"] = \
                self.resolver_enum.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        return self.interpreter_cls(**kwargs)


def _package_version(package: str) -> Optional[str]:
    try:
        mod = importlib.import_module(package)
        version = getattr(mod, "__version__", None)
        if version:
            return str(version)
    except Exception:  # noqa: BLE001
        pass
    try:
        import importlib.metadata as md
        return md.version(package.replace("_", "-"))
    except Exception:  # noqa: BLE001
        return None


def _import_runtime(entry: Tuple[str, str, str, str]) -> Runtime:
    name, module, package, _ = entry
    if package == "tensorflow":
        tf = importlib.import_module("tensorflow")
        lite = tf.lite
        resolver = getattr(getattr(lite, "experimental", None), "OpResolverType", None)
        return Runtime(name, module, _package_version(package), lite.Interpreter, resolver)
    mod = importlib.import_module(module)
    return Runtime(name, module, _package_version(package), mod.Interpreter,
                   getattr(mod, "OpResolverType", None))


def _runtime_entry(requested: str) -> Optional[Tuple[str, str, str, str]]:
    key = requested.strip().lower().replace("_", "-")
    key = _RUNTIME_ALIASES.get(key, key)
    for entry in RUNTIMES:
        names = (entry[0], entry[1].replace("_", "-"), entry[2].replace("_", "-"))
        if key in names:
            return entry
    return None


def numpy_major() -> int:
    try:
        return int(np.__version__.split(".")[0]) if np is not None else 0
    except ValueError:
        return 0


def load_runtime(requested: Optional[str] = "auto") -> Runtime:
    """Import the requested runtime (or the first that imports for `auto`); AgentError NoRuntime."""
    if np is None:
        raise AgentError(NO_RUNTIME, "numpy does not import in this Python; "
                         "pip install numpy, then " + INSTALL_HINT)
    req = (requested or "auto").strip()
    if req.lower() != "auto":
        entry = _runtime_entry(req)
        if entry is None:
            raise AgentError(NO_RUNTIME, "unknown runtime %r: use auto, ai-edge-litert, "
                             "tflite-runtime or tensorflow" % req)
        try:
            return _import_runtime(entry)
        except Exception as e:  # noqa: BLE001 - ImportError, or a broken install
            raise AgentError(NO_RUNTIME, "runtime %s (%s) does not import under %s: %s: %s; "
                             "to use it: %s. Or %s" % (entry[0], entry[1], sys.executable,
                                                       type(e).__name__, e, entry[3],
                                                       INSTALL_HINT))
    reasons: List[str] = []
    for entry in RUNTIMES:
        if entry[0] == "tflite-runtime" and numpy_major() >= 2:
            reasons.append("%s: skipped, needs numpy<2 (numpy %s here)"
                           % (entry[1], np.__version__))
            continue
        try:
            return _import_runtime(entry)
        except Exception as e:  # noqa: BLE001
            reasons.append("%s: %s: %s" % (entry[1], type(e).__name__, e))
    raise AgentError(NO_RUNTIME, "no TFLite runtime imports under %s (%s); %s"
                     % (sys.executable, "; ".join(reasons), INSTALL_HINT))


def probe_runtime(requested: Optional[str]) -> Tuple[Optional[Runtime], Optional[str]]:
    try:
        return load_runtime(requested), None
    except AgentError as e:
        return None, e.message


def hello_event(requested: Optional[str]) -> Dict[str, Any]:
    rt, err = probe_runtime(requested)
    return {"agent_version": AGENT_VERSION, "python": platform.python_version(),
            "executable": sys.executable,
            "numpy": np.__version__ if np is not None else None,
            "runtime": rt.describe() if rt is not None else None, "runtime_error": err,
            "device_info": collect_device_info()}
