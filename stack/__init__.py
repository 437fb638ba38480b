"""The local stack: a real Pebble running the charms' own layers.

Used by the try-it command (``python -m stack``) and by the workload tests.
"""
