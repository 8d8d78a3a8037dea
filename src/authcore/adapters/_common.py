"""What every adapter shares: the gate's options, the ``public`` marker, and logging bugs.

Nothing here decides who may do what: the decisions are the core's, behind one entry point
(:class:`~authcore.gate.Gate`). Adapters take an
:class:`~authcore.authenticator.Authenticator` (or a ready :class:`~authcore.gate.Gate`) plus the
same keyword options, :class:`GateOptions`, declared once here; :func:`make_gate` turns them into
the gate, with bugs logged here.
"""

from __future__ import annotations

import atexit
import logging
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Protocol, TypedDict, TypeVar, runtime_checkable

import attrs

from authcore.authenticator import Authenticator
from authcore.errors import AuthcoreError, ConfigurationError
from authcore.gate import (
    AuthObserver,
    ErrorHook,
    Gate,
    RequestMetrics,
    RouteGroups,
    RouteTable,
    answer_error,
)
from authcore.responses import HTTPResponse
from authcore.usage import UsageSink

__all__ = [
    "PUBLIC_MARKER",
    "ErrorHook",
    "GateOptions",
    "GateSource",
    "Lifecycle",
    "RouteTable",
    "is_marked_public",
    "lifecycle_of",
    "log_unexpected",
    "make_gate",
    "missing_extra",
    "public",
    "safe_response",
    "start_with_process",
]

logger = logging.getLogger("authcore.adapters")

#: The attribute :func:`public` sets on a view, endpoint or endpoint class.
PUBLIC_MARKER: Final = "__authcore_public__"

F = TypeVar("F")


class GateOptions(TypedDict, total=False):
    """The keyword options every adapter takes (see :meth:`authcore.gate.Gate.build`).

    ``groups`` maps path prefixes (``"/portal/"``) to other authenticators (route groups);
    ``public_paths`` (exact) and ``public_prefixes`` (ending in ``/``) skip authentication;
    ``on_error(error)`` may return a custom :class:`~authcore.responses.HTTPResponse`;
    ``metrics`` is called once per request, timed with ``timer`` (``time.perf_counter``);
    ``observer`` hears of every auth step's outcome (code, source, replay, decision, time).
    ``usage`` counts every outcome per workspace, credential and outcome (an
    :class:`authcore.backends.Auth` brings its own).
    """

    groups: Mapping[str, Authenticator] | None
    public_paths: Iterable[str]
    public_prefixes: Iterable[str]
    on_error: ErrorHook | None
    metrics: RequestMetrics | None
    timer: Callable[[], float]
    observer: AuthObserver | None
    usage: UsageSink | None


def missing_extra(module: str, needs: str, extra: str) -> str:
    """Return the message of an adapter's import guard: what it needs, and how to install it.

    authcore-auth is not on PyPI yet (README.md, "Install"), and ``pip install authcore``
    installs an unrelated project: the message says so rather than name a command that fails.
    """
    return (
        f"{module} needs {needs}, authcore's {extra!r} extra: in a clone of authcore, "
        f"pip install -e '.[{extra}]' (authcore-auth is not on PyPI yet, and "
        "'pip install authcore' is an unrelated project)"
    )


def public(view: F) -> F:
    """Mark a view (function or endpoint class) as public: the middleware skips it."""
    setattr(view, PUBLIC_MARKER, True)
    return view


def is_marked_public(view: object) -> bool:
    """Return whether :func:`public` marked ``view``."""
    return getattr(view, PUBLIC_MARKER, False) is True


def log_unexpected(exc: BaseException, where: str) -> None:
    """Log a bug without its message: a message may quote a request, and so a secret."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    logger.error("authcore: unexpected %s in %s\n%s", type(exc).__name__, where, frames)


#: What an adapter takes: an authenticator (with keyword options), route groups such as
#: :class:`authcore.backends.Auth` (the same), or a ready gate.
GateSource = Authenticator | Gate | RouteGroups


@runtime_checkable
class Lifecycle(Protocol):
    """Something that runs with the app: started before it serves, closed after
    (:class:`authcore.backends.Auth`: the Redis subscriber, pools and connections)."""

    def start(self) -> None: ...

    def close(self) -> None: ...

    async def astart(self) -> None: ...

    async def aclose(self) -> None: ...


def lifecycle_of(source: object) -> Lifecycle | None:
    """Return ``source`` if it has a lifecycle the adapter must drive, else None."""
    return source if isinstance(source, Lifecycle) else None


def start_with_process(lifecycle: Lifecycle | None) -> None:
    """For WSGI and Flask, which have no lifespan: start now, close when the process exits."""
    if lifecycle is not None:
        lifecycle.start()
        atexit.register(lifecycle.close)


def make_gate(authenticator: GateSource, options: GateOptions) -> Gate:
    """Return the gate for an adapter: ``authenticator`` with ``options``, or a ready gate.

    Route groups (an :class:`authcore.backends.Auth`) give the default authenticator and the
    ``groups``; a ``groups`` option replaces theirs.

    Raises:
        ConfigurationError: an invalid prefix or authenticator, or options beside a ready gate.
    """
    if not isinstance(authenticator, Authenticator | Gate) and isinstance(
        authenticator, RouteGroups
    ):
        merged = GateOptions(**options)
        merged.setdefault("groups", authenticator.groups)
        counter = getattr(authenticator, "usage", None)
        if counter is not None:
            merged.setdefault("usage", counter)
        return make_gate(authenticator.authenticator, merged)
    if isinstance(authenticator, Gate):
        if options:
            raise ConfigurationError("give the options to Gate.build, not beside a Gate")
        gate = authenticator
        return gate if gate.on_bug is not None else attrs.evolve(gate, on_bug=log_unexpected)
    if not isinstance(authenticator, Authenticator):
        raise ConfigurationError(
            "expected an authcore.flow.Authenticator, an authcore.backends.Auth or a Gate"
        )
    return Gate.build(
        authenticator,
        groups=options.get("groups"),
        public_paths=options.get("public_paths", ()),
        public_prefixes=options.get("public_prefixes", ()),
        on_error=options.get("on_error"),
        metrics=options.get("metrics"),
        timer=options.get("timer", time.perf_counter),
        on_bug=log_unexpected,
        observer=options.get("observer"),
        usage=options.get("usage"),
    )


def safe_response(
    error: AuthcoreError | None, realm: str, on_error: ErrorHook | None = None
) -> HTTPResponse:
    """Return the response for ``error`` (None: a bug, answered as a safe 500); bugs logged."""
    return answer_error(error, realm=realm, on_error=on_error, on_bug=log_unexpected)
