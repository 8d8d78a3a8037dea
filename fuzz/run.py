"""Coverage-guided fuzzing of authcore's input parsers with atheris (a separate command).

Targets, chosen by the first input byte so one corpus drives them all:

- Authorization header + portal cookie extraction (``extract_credential``),
- JWT verification (``Keyring.verify``) over arbitrary strings,
- the permission query parser (``parse_query``) and grant validation,
- the dashboard proxy's pure request builder, when present.

Every input must end in a value or an ``AuthcoreError``; anything else is a crash that atheris
reports with the input that caused it. Run: ``make fuzz`` (``FUZZ_SECONDS`` bounds the run).
The seed corpus in ``fuzz/corpus/`` is kept in the repository; a run adds the inputs it finds
there, which git ignores (``.gitignore``): keep one with ``git add -f``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from authcore.credentials import CredentialSettings, extract_credential
    from authcore.errors import AuthcoreError
    from authcore.keyring import Keyring, SigningSecret
    from authcore.permissions import PermissionSet, parse_query
    from authcore.tokens import Secret

API = CredentialSettings.api()
PORTAL = CredentialSettings.portal()
KEYRING = Keyring(
    [SigningSecret("k1", Secret("f" * 40)), SigningSecret("k2", Secret("g" * 40))],
    signing_kid="k1",
)
NOW = 1_800_000_000


def _one_input(data: bytes) -> None:
    if not data:
        return
    selector, rest = data[0] % 4, data[1:]
    text = rest.decode("latin-1")
    try:
        if selector == 0:
            values = text.split("\n")[:3] if text else []
            extract_credential(values[:-1] or values, values[-1] if len(values) > 1 else None, API)
            extract_credential([], text, PORTAL)
        elif selector == 1:
            KEYRING.verify(text, NOW)
        elif selector == 2:
            parse_query(text)
        else:
            PermissionSet(text.split(","))
    except AuthcoreError:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=120, help="how long to fuzz")
    args, rest = parser.parse_known_args()
    corpus = Path(__file__).parent / "corpus"
    corpus.mkdir(exist_ok=True)
    argv = [sys.argv[0], *rest, f"-max_total_time={args.seconds}", "-max_len=4096", str(corpus)]
    atheris.Setup(argv, _one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
