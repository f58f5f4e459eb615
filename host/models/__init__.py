"""Models: built-ins, model inspection, quantizers, accuracy scoring."""
