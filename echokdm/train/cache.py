"""Names of the training-data cache files (phantom pairs, model flows, segmenter loops)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def cache_key(*parts: Any) -> str:
    """Ten hex digits naming a cache file by what it was made from (JSON-able ``parts``, dict keys sorted)."""
    return hashlib.sha1(json.dumps(list(parts), sort_keys=True).encode()).hexdigest()[:10]
