"""Benchmarks of the stack the charms configure (``python -m bench``)."""
