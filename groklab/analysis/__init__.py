"""Mechanistic analysis of runs over their checkpoints (science.md §6): the methods are listed in `methods.py`."""
