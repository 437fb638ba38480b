"""The local stack: real Pebble running the charms' own layers (used by the try-it command and the tests)."""
