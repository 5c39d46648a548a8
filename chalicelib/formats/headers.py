"""Reading FITS header values (metafits, hyperdrive PRIMARY): the one rule for text keys."""

from __future__ import annotations


def header_text(value: object) -> str | None:
    """A header value as stripped text; None when it is absent or blank (FITS pads strings with spaces)."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None
