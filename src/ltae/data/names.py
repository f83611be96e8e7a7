"""Names as ltae keeps them (headers, channels, roles): normalising, matching, splitting lists.

No pandas here: the command line builds its options from :mod:`ltae.data.roles`, which uses
these, and starts fast.
"""

from __future__ import annotations

import unicodedata

DATE = "Date"  # canonical name of the date column once a table is loaded


def normalize_name(name) -> str:
    """Header/channel name as ltae keeps it: BOM and surrounding whitespace removed, NFC unicode."""
    return unicodedata.normalize("NFC", str(name)).replace("\ufeff", "").strip()


def name_key(name) -> str:
    """Key for case- and whitespace-insensitive matching of names."""
    return " ".join(normalize_name(name).split()).casefold()


def split_names(value) -> list[str] | None:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``; a sequence is normalised; ``None`` stays ``None``."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    out = [normalize_name(v) for v in items]
    return [v for v in out if v]
