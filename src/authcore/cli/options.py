"""Argument types and checks that several command groups share."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from authcore.cli.errors import UsageError
from authcore.errors import AuthcoreError, ConfigurationError, InvalidPermissionError
from authcore.names import check_name
from authcore.permissions import PermissionSet
from authcore.ratelimit import RateLimitPolicy


def env_default(name: str, default: str | None) -> str | None:
    value = os.environ.get(name)
    return value if value else default


def positive_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def rate_limit(text: str) -> RateLimitPolicy:
    try:
        return RateLimitPolicy.parse(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(exc.detail or "invalid rate limit") from None


def identifier(text: str) -> str:
    # The one rule for names and ids (authcore.names), the one the store applies too: no
    # control, format (bidi), line-separator or surrogate character, at most 200 characters.
    try:
        return check_name(text, "value")
    except AuthcoreError:
        raise argparse.ArgumentTypeError(
            "must be 1-200 characters, without control, format (bidi) or line-separator characters"
        ) from None


def checked_grants(values: Sequence[str] | None) -> list[str]:
    """The ``--permission`` values, each checked against the grant grammar.

    Raises:
        UsageError: a value is not a valid grant.
    """
    grants = list(values or [])
    try:
        PermissionSet(grants)
    except InvalidPermissionError as exc:
        raise UsageError(f"--permission: {exc.detail}") from None
    return grants
