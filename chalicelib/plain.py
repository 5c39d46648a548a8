"""numpy values as plain Python values: what JSON answers and pg8000 parameters need."""

from __future__ import annotations

from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """Arrays as lists and numpy scalars as Python numbers, also inside dicts, lists and tuples (NaN stays NaN).

    Lists and tuples come back as lists (JSON arrays; pg8000 binds a list as a PostgreSQL array);
    anything else is returned as it is.
    """
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
