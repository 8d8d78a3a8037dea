"""No ``repr``, ``str`` or ``attrs.asdict`` of a public object holding a secret shows it.

Hypothesis picks the secret; we build every public value that can carry one (credentials,
issued tokens, signing secrets and keyrings, store records with digests, creation results,
dashboard users, the proxy's upstream request) and look for the secret, its digest in hex and
the digest's bytes ``repr`` in every text view of them.
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import given

from authcore.credentials import Credential, CredentialKind
from authcore.keyring import Keyring, SigningSecret
from authcore.proxy import UpstreamRequest
from authcore.records import (
    DashboardUserRecord,
    NewPortalSession,
    NewRootKey,
    PortalSessionRecord,
    RootKeyRecord,
)
from authcore.tokens import IssuedToken, Secret, digest
from tests.strategies import secrets_text


def views(value: object) -> list[str]:
    out = [repr(value), str(value), f"{value}"]
    if attrs.has(type(value)):
        as_dict: Any = attrs.asdict(value)  # type: ignore[arg-type]  # checked by attrs.has
        out.append(repr(as_dict))
        out.append(str(as_dict))
    return out


@given(secrets_text)
def test_no_text_view_of_a_public_value_shows_the_secret(raw: str) -> None:
    key = "ak_" + raw
    secret = Secret(key)
    hashed = digest(key)
    root = RootKeyRecord(
        id="key_1",
        workspace_id="ws",
        digest=hashed,
        start=key[:9],
        name=None,
        permissions=(),
        created_at=0,
    )
    session = PortalSessionRecord(
        id="ps_1",
        workspace_id="ws",
        identity_id="idt_u",
        digest=hashed,
        permissions=(),
        created_at=0,
        expires_at=1,
    )
    signing = SigningSecret("k1", Secret(raw))
    values: list[object] = [
        secret,
        Credential(CredentialKind.ROOT_KEY, secret),
        IssuedToken(id="key_1", secret=secret, start=key[:9], digest=hashed),
        signing,
        Keyring([signing], signing_kid="k1"),
        root,
        session,
        NewRootKey(root, secret),
        NewPortalSession(session, secret),
        DashboardUserRecord(user_id="u", org_id="o", password_hash=raw, permissions=()),
        UpstreamRequest(
            method="GET",
            url="http://127.0.0.1:8000/v1/keys",
            headers=(("authorization", Secret("Bearer " + raw)), ("accept", "*/*")),
            body=b"{}",
        ),
    ]
    for value in values:
        for text in views(value):
            assert raw not in text, type(value).__name__
            assert hashed.hex() not in text, type(value).__name__
            assert repr(bytes(hashed)) not in text, type(value).__name__
