"""Signing-secret rotation: whether one step of it is safe before it is applied.

The dashboard proxy signs with one secret (named by its ``kid``); the API verifies with an
ordered list of them (see :class:`~authcore.keyring.Keyring`). Rotation, with no valid token
rejected at any step:

1. **Add** the new secret to the API's list (the API now accepts both). The dashboard must not
   sign with a secret the API does not know yet, or its tokens would be rejected.
2. **Switch** the dashboard to sign with the new ``kid``; note the time (``switched_at``).
3. **Remove** the old secret from the API's list once every token signed with it has expired:
   at ``switched_at + max_lifetime + leeway`` or later. Removing it earlier rejects tokens
   that are still valid; keeping it longer widens the window in which a leaked old secret
   still works.

:func:`check_rotation` checks one such step before it is applied (the CLI uses it). Both names
are also importable from :mod:`authcore.keyring`, where they lived first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    # Annotation only: authcore.keyring re-exports this module's names, so importing it here
    # at run time would be a cycle.
    from authcore.keyring import JWTSettings

__all__ = ["RotationCheck", "check_rotation"]


@attrs.frozen
class RotationCheck:
    """The outcome of :func:`check_rotation`: safe, or the human-readable reasons why not."""

    safe: bool
    problems: tuple[str, ...]


def check_rotation(
    api_kids: Sequence[str],
    signing_kid: str,
    *,
    switched_at: int | None,
    removing: Sequence[str] = (),
    now: int,
    settings: JWTSettings,
) -> RotationCheck:
    """Check one rotation step: the API's kids, the signer's kid and the kids to remove.

    ``switched_at`` is when the signer started using ``signing_kid`` (None if unknown).
    Never raises for any input of the documented types.
    """
    problems: list[str] = []
    api = list(api_kids)
    if len(set(api)) != len(api):
        problems.append("the API list names a kid twice")
    # Step 1 before step 2: a signer using a kid the API does not know gets every token
    # rejected.
    if signing_kid not in api:
        problems.append(f"the signing kid {signing_kid!r} is not in the API list")
    if removing:
        # Step 3: every token signed with a removed secret must have expired, which is only
        # certain max_lifetime + leeway after the signer stopped using it.
        earliest = (
            None if switched_at is None else switched_at + settings.max_lifetime + settings.leeway
        )
        for kid in removing:
            if kid == signing_kid:
                problems.append(f"kid {kid!r} is the signing kid and cannot be removed")
                continue
            if kid not in api:
                problems.append(f"kid {kid!r} is not in the API list")
            if earliest is None:
                problems.append(
                    f"kid {kid!r} cannot be removed: the time the signer switched is unknown"
                )
            elif now < earliest:
                problems.append(
                    f"kid {kid!r} cannot be removed before {earliest} "
                    f"(switch + max_lifetime + leeway); {earliest - now} s to go"
                )
    return RotationCheck(safe=not problems, problems=tuple(problems))
