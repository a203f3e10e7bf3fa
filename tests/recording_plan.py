"""A stand-in launch plan for the host-path tests: it records each launch instead of making one."""

from __future__ import annotations


class RecordingPlan:
    def __init__(self):
        self.calls = []

    def launch(self, out_ptr, lse_ptr, stream):
        self.calls.append((out_ptr, lse_ptr, stream))
