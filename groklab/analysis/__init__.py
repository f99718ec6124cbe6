"""Mechanistic analysis of runs: logit lens (and, later, causal tracing) across checkpoints (science.md §6)."""
