"""Short content fingerprints, for cache names and for telling whether inputs changed."""
import hashlib
import json


def json_digest(x, length: int = 16) -> str:
    """The first `length` hex digits of the sha256 of `x` as JSON (keys sorted, anything not
    JSON-native as its str)."""
    return hashlib.sha256(json.dumps(x, sort_keys=True, default=str).encode()).hexdigest()[:length]
