"""The bounds on a request head at the servers authcore starts (size and arrival time).

Apart from :mod:`authcore.service.http_head` (which applies them under uvicorn) so that the
command line reads them without importing a server.
"""

from __future__ import annotations

from typing import Any, Final

import attrs

__all__ = [
    "DEFAULT_HEAD_BYTES",
    "DEFAULT_HEAD_TIMEOUT",
    "HEAD_BYTES_RANGE",
    "HEAD_TIMEOUT_RANGE",
    "HeadLimits",
]

#: The default bound on a request head: 64 KiB (h11's default is 16 KiB, nginx's 8-32 KiB).
DEFAULT_HEAD_BYTES: Final = 64 * 1024
#: The default time a request head may take to arrive, in seconds.
DEFAULT_HEAD_TIMEOUT: Final = 10
#: The range :class:`HeadLimits` accepts for each bound.
HEAD_BYTES_RANGE: Final = (1024, 1024 * 1024)
HEAD_TIMEOUT_RANGE: Final = (1, 300)


def _in_range(bounds: tuple[int, int]) -> Any:
    low, high = bounds

    def check(_: object, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{attribute.name} must be a whole number in {low:,}..{high:,}")

    return check


@attrs.frozen
class HeadLimits:
    """How large a request head may be (bytes) and how long it may take to arrive (seconds).

    Raises:
        ValueError: a bound outside its range (1 KiB-1 MiB; 1-300 s).
    """

    max_bytes: int = attrs.field(default=DEFAULT_HEAD_BYTES, validator=_in_range(HEAD_BYTES_RANGE))
    timeout: int = attrs.field(
        default=DEFAULT_HEAD_TIMEOUT, validator=_in_range(HEAD_TIMEOUT_RANGE)
    )
