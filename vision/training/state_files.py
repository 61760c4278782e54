"""Helpers shared by the networks' state files (``*.state.pt``) and their growth for a larger catalog."""

from __future__ import annotations

from typing import Any


def copy_array(array: Any) -> Any:
    """A copy of a torch tensor or a numpy array: growing a state needs neither torch nor a network, so the
    growth logic is tested on numpy arrays in the test process (which must not load torch beside EGL)."""
    return array.clone() if hasattr(array, "clone") else array.copy()
