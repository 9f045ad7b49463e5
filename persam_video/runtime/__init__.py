"""Plumbing of a run: the CPUs and threads to use, output-folder locks, child processes that die
with their parent, freed memory kept for reuse."""
