"""The one error every bundle step raises, kept apart so the wheel, metadata, run and bundle
modules can all raise it without importing each other."""

from __future__ import annotations

__all__ = ["BundleError"]


class BundleError(ValueError):
    """A bundle that must not be built or uploaded; the message says what to fix."""
