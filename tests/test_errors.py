"""The exception tree: one root, statuses by who is at fault, safe fixed messages."""

from __future__ import annotations

import inspect
import re

import pytest

from authcore import errors

ALL_ERRORS = [
    obj
    for _, obj in inspect.getmembers(errors, inspect.isclass)
    if issubclass(obj, errors.AuthcoreError)
]


def test_every_error_derives_from_the_root() -> None:
    assert set(errors.__all__) == {cls.__name__ for cls in ALL_ERRORS}


@pytest.mark.parametrize("cls", [c for c in ALL_ERRORS if issubclass(c, errors.ClientError)])
def test_client_errors_are_4xx(cls: type[errors.AuthcoreError]) -> None:
    assert 400 <= cls.status < 500


@pytest.mark.parametrize("cls", [c for c in ALL_ERRORS if issubclass(c, errors.ServerError)])
def test_server_errors_are_5xx(cls: type[errors.AuthcoreError]) -> None:
    assert cls.status == 500


@pytest.mark.parametrize("cls", ALL_ERRORS)
def test_codes_are_stable_identifiers(cls: type[errors.AuthcoreError]) -> None:
    assert cls.code.replace("_", "").isalpha()
    assert cls.code.islower()


def test_codes_are_unique_per_status() -> None:
    seen = {(cls.status, cls.code) for cls in ALL_ERRORS}
    assert len({code for _, code in seen}) == len(seen)


def test_rank_orders_unavailable_over_forbidden_over_unauthenticated() -> None:
    assert (
        errors.UnavailableError.rank
        > errors.PermissionDeniedError.rank
        > errors.InvalidCredentialError.rank
        > errors.MissingCredentialError.rank
    )


def test_detail_is_kept_for_developers_but_message_is_fixed() -> None:
    exc = errors.InvalidCredentialError("revoked")
    assert exc.detail == "revoked"
    assert exc.message == errors.InvalidCredentialError.message
    assert "revoked" in str(exc)
    assert repr(exc) == "InvalidCredentialError(detail='revoked')"


def test_the_rate_limit_message_names_no_level() -> None:
    # A key over its own limit (or an identity over its) is not "this workspace": the
    # decision does not say which bucket refused, so the fixed message must not guess.
    assert errors.RateLimitedError.message == "Too many requests."


def test_unavailable_carries_retry_after() -> None:
    assert errors.UnavailableError(retry_after=9).retry_after == 9
    assert errors.UnavailableError().retry_after == 1


def _drawn_tree() -> list[tuple[str, str | None]]:
    """(class, drawn parent) for every line of the tree in the module docstring."""
    doc = errors.__doc__ or ""
    drawing = doc[doc.index("    AuthcoreError") :].split("\n\n", 1)[0]
    stack: list[str] = []
    pairs: list[tuple[str, str | None]] = []
    for line in drawing.splitlines():
        name = re.search(r"[A-Z]\w+Error", line)
        assert name is not None, line
        depth = name.start() // 4 - 1
        del stack[depth:]
        pairs.append((name.group(), stack[-1] if stack else None))
        stack.append(name.group())
    return pairs


def test_the_docstring_draws_every_error_once_under_its_parent() -> None:
    pairs = _drawn_tree()
    assert sorted(name for name, _ in pairs) == sorted(errors.__all__)
    for name, parent in pairs:
        if parent is not None:
            assert issubclass(getattr(errors, name), getattr(errors, parent)), name


def test_the_drawing_stars_each_proxy_error_drawn_outside_the_proxy_branch() -> None:
    marked = set(re.findall(r"([A-Z]\w+Error) \*", errors.__doc__ or ""))
    # A proxy error drawn under a parent that is not one (so its ProxyError base is unseen).
    hidden = {
        name
        for name, parent in _drawn_tree()
        if parent is not None
        and issubclass(getattr(errors, name), errors.ProxyError)
        and not issubclass(getattr(errors, parent), errors.ProxyError)
    }
    assert marked == hidden - {"ProxyError"}
    assert len(marked) == 4
