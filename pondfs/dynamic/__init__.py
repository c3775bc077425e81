"""Computed nodes: factories whose directories and files derive from other nodes."""
