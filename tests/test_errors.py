"""The exception tree: one root, statuses by who is at fault, safe fixed messages."""

from __future__ import annotations

import inspect

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


def test_unavailable_carries_retry_after() -> None:
    assert errors.UnavailableError(retry_after=9).retry_after == 9
    assert errors.UnavailableError().retry_after == 1
