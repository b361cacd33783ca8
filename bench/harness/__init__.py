"""The dm-rs benchmark harness behind bench/run.py (see bench/README.md, "Layout")."""
