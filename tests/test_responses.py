"""Outcome -> HTTP: the table in docs/architecture.md; nothing from the request in the answer."""

from __future__ import annotations

import json

import pytest

from authcore import errors
from authcore.ratelimit import RateLimitDecision, RateLimitPolicy
from authcore.ratelimit_fields import LimitFields, RateLimitHeaders
from authcore.responses import PROBLEM_CONTENT_TYPE, error_response, rate_limit_headers

DENIED = RateLimitDecision(allowed=False, limit=10, remaining=0, reset=30, retry_after=6)


@pytest.mark.parametrize(
    ("error", "status", "challenge"),
    [
        (errors.MissingCredentialError(), 401, 'Bearer realm="api"'),
        (errors.UnsupportedSchemeError(), 401, 'Bearer realm="api"'),
        (errors.MalformedCredentialError(), 400, 'Bearer realm="api", error="invalid_request"'),
        (errors.DuplicateCredentialError(), 400, 'Bearer realm="api", error="invalid_request"'),
        (errors.CredentialTooLargeError(), 400, 'Bearer realm="api", error="invalid_request"'),
        (errors.InvalidCredentialError(), 401, 'Bearer realm="api", error="invalid_token"'),
        (
            errors.PermissionDeniedError(),
            403,
            'Bearer realm="api", error="insufficient_scope"',
        ),
        (errors.WorkspaceDisabledError(), 403, None),
        (errors.CrossSiteRequestError(), 403, None),
        (errors.InvalidPermissionError(), 400, None),
        (errors.RateLimitedError(DENIED), 429, None),
        (errors.UnavailableError(retry_after=3), 503, None),
        (errors.PrincipalMissingError(), 500, None),
        (errors.ConfigurationError(), 500, None),
    ],
)
def test_status_and_challenge_follow_the_table(
    error: errors.AuthcoreError, status: int, challenge: str | None
) -> None:
    response = error_response(error)
    headers = dict(response.headers)
    assert response.status == status
    assert headers.get("www-authenticate") == challenge
    assert headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert headers["cache-control"] == "no-store"
    body = json.loads(response.body)
    assert body["status"] == status
    assert body["code"] == error.code
    assert body["title"] == error.message


def test_429_carries_retry_after_and_the_drafts_fields() -> None:
    headers = dict(error_response(errors.RateLimitedError(DENIED)).headers)
    assert headers["retry-after"] == "6"
    # Built by hand, the error says neither its level nor its window: the draft's own name.
    assert headers["ratelimit-policy"] == '"default";q=10'
    assert headers["ratelimit"] == '"default";r=0;t=30'
    assert "ratelimit-limit" not in headers


def test_429_of_the_flow_describes_every_level_in_the_route_groups_style() -> None:
    levels = (("ws_1:key:key_1", RateLimitPolicy(10, 60)), ("ws_1", RateLimitPolicy(600, 60)))
    ok = RateLimitDecision(allowed=True, limit=600, remaining=500, reset=10, retry_after=0)
    for style, expected in (
        (
            RateLimitHeaders.DRAFT,
            {
                "ratelimit-policy": '"key";q=10;w=60, "workspace";q=600;w=60',
                "ratelimit": '"key";r=0;t=30, "workspace";r=500;t=10',
            },
        ),
        (
            RateLimitHeaders.LEGACY,
            {"ratelimit-limit": "10", "ratelimit-remaining": "0", "ratelimit-reset": "30"},
        ),
        (RateLimitHeaders.NONE, {}),
    ):
        fields = LimitFields.for_levels(style, levels)
        error = errors.RateLimitedError(DENIED, fields=fields, decisions=(DENIED, ok))
        headers = dict(error_response(error).headers)
        assert headers["retry-after"] == "6"
        assert {k: v for k, v in headers.items() if k.startswith("ratelimit")} == expected


def test_503_carries_retry_after() -> None:
    headers = dict(error_response(errors.UnavailableError(retry_after=7)).headers)
    assert headers["retry-after"] == "7"


def test_detail_never_reaches_the_response() -> None:
    sentinel = "ak_SENTINEL_SECRET_VALUE"
    for cls in (errors.InvalidCredentialError, errors.MalformedCredentialError):
        response = error_response(cls(f"revoked {sentinel}"))
        assert sentinel.encode() not in response.body
        assert all(sentinel not in value for _, value in response.headers)


def test_every_invalid_reason_answers_identically() -> None:
    bodies = {
        error_response(errors.InvalidCredentialError(reason)).body
        for reason in ("unknown", "revoked", "expired", "signature", None)
    }
    assert len(bodies) == 1


def test_realm_is_configurable() -> None:
    response = error_response(errors.MissingCredentialError(), realm="portal")
    assert dict(response.headers)["www-authenticate"] == 'Bearer realm="portal"'


def test_legacy_rate_limit_headers_from_decision() -> None:
    decision = RateLimitDecision(allowed=True, limit=100, remaining=42, reset=9, retry_after=0)
    assert rate_limit_headers(decision) == [
        ("ratelimit-limit", "100"),
        ("ratelimit-remaining", "42"),
        ("ratelimit-reset", "9"),
    ]
