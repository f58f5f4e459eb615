"""edge-bench device agent: time TFLite/LiteRT models on this device (docs/protocol.md).

The package `edge_bench_agent` ships to a device as ONE zipapp (agent-<sha256>.pyz, built by
edge_bench.fleet.artifact) and runs under the device's own Python (>= 3.8 syntax), with the
stdlib, numpy and one TFLite runtime:

    PYTHON agent.pyz            job (JSON) on stdin -> one JSON event per line on stdout
    PYTHON agent.pyz --probe    hello + bye (device facts, runtime; with --accelerators also
                                what GPU/NPU/external delegates can run, agent/accel_probe.py)
    PYTHON agent.pyz --worker   internal: run ONE task (JSON on stdin) in this process
    PYTHON agent.pyz --version  print the agent version

(`python -m edge_bench_agent` does the same from an installed package.) stdout carries protocol
lines only: at startup the real stdout is duplicated to a private fd used for protocol writes and
fd 1 is pointed at stderr, so prints from Python or C (the runtime) land on stderr.
"""
from __future__ import annotations

import sys
import traceback
from typing import List, Optional

from .job import job_main
from .output import emit, emit_error, protect_stdout, write_raw
from .protocol import AGENT_VERSION
from .runtime import hello_event
from .task import worker_main


def _arg_value(argv: List[str], flag: str) -> Optional[str]:
    if flag in argv:
        i = argv.index(flag)
        return argv[i + 1] if i + 1 < len(argv) else None
    return None


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    protect_stdout()
    try:
        if "--version" in args:
            write_raw(AGENT_VERSION + "\n")
            return 0
        if "--worker" in args:
            return worker_main()
        if "--probe" in args:
            hello = hello_event(_arg_value(args, "--runtime") or "auto")
            if "--accelerators" in args:
                from .accel_probe import probe_accelerators
                hello["accelerators"] = probe_accelerators()
            emit("hello", job_id=None, **hello)
            emit("bye", tasks=0, errors=0)
            return 0
        return job_main(sys.stdin.buffer)
    except BrokenPipeError:
        return 1
    except BaseException as e:  # noqa: BLE001 - never a bare traceback on stdout
        if isinstance(e, SystemExit):
            raise
        try:
            emit_error(None, "InternalError", "%s: %s" % (type(e).__name__, e),
                       traceback.format_exc())
            emit("bye", tasks=0, errors=1)
        except Exception:  # noqa: BLE001
            pass
        return 1


if __name__ == "__main__":
    sys.exit(main())
