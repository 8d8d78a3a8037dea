"""The one cross-site rule for cookie-borne, state-changing requests (docs/architecture.md)."""

from __future__ import annotations

import pytest

from authcore.credentials import (
    CredentialSettings,
    check_cross_site,
    is_same_origin,
    request_origin,
)
from authcore.errors import CrossSiteRequestError

PORTAL = CredentialSettings.portal(allowed_origins=["https://portal.example"])
COOKIE = "pt_" + "c" * 43
OWN = "http://api.example:8000"


def check(method: str = "POST", **headers: list[str]) -> None:
    check_cross_site(
        method,
        headers.get("authorization", []),
        COOKIE,
        PORTAL,
        sec_fetch_site=headers.get("sec_fetch_site", []),
        origin=headers.get("origin", []),
        own_origin=OWN,
    )


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_safe_methods_pass_without_any_header(method: str) -> None:
    check(method)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "post"])
def test_a_write_with_no_fetch_metadata_and_no_origin_is_refused(method: str) -> None:
    with pytest.raises(CrossSiteRequestError):
        check(method)


def test_sec_fetch_site_same_origin_passes() -> None:
    check(sec_fetch_site=["same-origin"])
    check(sec_fetch_site=[" same-origin\t"])


@pytest.mark.parametrize("value", ["none", "same-site", "cross-site", "", "Same-Origin", "x"])
def test_any_other_sec_fetch_site_is_refused(value: str) -> None:
    with pytest.raises(CrossSiteRequestError):
        check(sec_fetch_site=[value])


def test_sec_fetch_site_outranks_origin() -> None:
    # The header a browser sets for every request decides; Origin is read only without it.
    with pytest.raises(CrossSiteRequestError):
        check(sec_fetch_site=["cross-site"], origin=[OWN])


def test_without_fetch_metadata_the_own_origin_passes() -> None:
    check(origin=[OWN])


def test_without_fetch_metadata_a_configured_origin_passes() -> None:
    check(origin=["https://portal.example"])


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "null", "http://api.example:8000/", "https://api.example:8000", ""],
)
def test_without_fetch_metadata_another_origin_is_refused(origin: str) -> None:
    with pytest.raises(CrossSiteRequestError):
        check(origin=[origin])


def test_repeated_headers_are_unreadable_and_refused() -> None:
    with pytest.raises(CrossSiteRequestError):
        check(sec_fetch_site=["same-origin", "same-origin"])
    with pytest.raises(CrossSiteRequestError):
        check(origin=[OWN, OWN])


def test_bearer_requests_are_not_checked() -> None:
    check(authorization=["Bearer pt_x"])


def test_a_websocket_handshake_is_checked_even_with_get() -> None:
    with pytest.raises(CrossSiteRequestError):
        check_cross_site("GET", [], COOKIE, PORTAL, own_origin=OWN, websocket=True)


def test_routes_that_read_no_cookie_are_not_checked() -> None:
    check_cross_site("POST", [], COOKIE, CredentialSettings.api())


@pytest.mark.parametrize(
    ("scheme", "host", "expected"),
    [
        ("http", ["api.example:8000"], "http://api.example:8000"),
        ("https", ["API.Example"], "https://api.example"),
        ("wss", ["api.example"], "https://api.example"),
        ("ws", ["[::1]:8000"], "http://[::1]:8000"),
        ("http", [], None),
        ("http", ["a.example", "b.example"], None),
        ("http", ["evil.example/path"], None),
        ("http", ["user@host"], None),
        ("ftp", ["api.example"], None),
    ],
)
def test_request_origin_is_scheme_and_the_single_host(
    scheme: str, host: list[str], expected: str | None
) -> None:
    assert request_origin(scheme, host) == expected


def test_is_same_origin_never_passes_with_nothing_to_go_on() -> None:
    assert not is_same_origin([], [])
    assert not is_same_origin([], ["null"], own_origin=None)
