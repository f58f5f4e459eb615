"""Pure statistics and verdicts: no I/O."""
