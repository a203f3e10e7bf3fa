"""Sizes for the GPU tests (BSK_TEST_BATCH_SIZE / BSK_TEST_SEQ_LEN shrink them)."""

from __future__ import annotations

import os


def max_seq_len() -> int:
    """Longest sequence the GPU tests use."""
    return int(os.environ.get("BSK_TEST_SEQ_LEN", 4097))


def batch_size() -> int:
    """Batch of the GPU tests."""
    return int(os.environ.get("BSK_TEST_BATCH_SIZE", 2))
