"""Where the real MWA fixture files live: ``../shared/fixtures/mwa`` beside the project root.

A test that needs them fails (never skips) when they are missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MWA_FIXTURES = Path(
    __import__("os").environ.get("MWA_FIXTURES_DIR", PROJECT_ROOT.parent / "shared" / "fixtures" / "mwa")
)


def mwa_file(*parts: str) -> Path:
    """Path of one fixture file; fails the calling test when it is missing."""
    path = MWA_FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"MWA fixture file missing: {path} (shared/ must sit beside the project)")
    return path
