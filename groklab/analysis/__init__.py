"""Mechanistic analysis of runs: logit lens (and, later, causal tracing) across checkpoints (SPEC §6)."""
