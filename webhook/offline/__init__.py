"""Offline front ends on the core: preview, runtime migration, and document I/O."""
