"""Offline front ends on the core: preview, runtime migration, the policy compiler, document
I/O, and the isolation they parse scripts under."""
