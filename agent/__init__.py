"""edge-bench device agent (docs/protocol.md).

The agent is the single self-contained file `agent.py` in this package; it is pushed to devices
on its own and imports nothing from here.
"""
