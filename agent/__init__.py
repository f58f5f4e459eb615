"""edge-bench device agent (docs/protocol.md).

A package by job: protocol (shared with the host), tensors (shared with the host), facts,
runtime, task (the warmup-and-time loop), supervise (worker processes), lock, job, output and
__main__. It ships to a device as ONE deterministic zipapp (edge_bench.fleet.artifact) and runs
under the device's own Python: >= 3.8 syntax, stdlib + numpy + one TFLite runtime.
"""
