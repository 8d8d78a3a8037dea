"""Per-workspace (and per-key) rate limiting with GCRA, a pure function of (state, now, policy).

GCRA (the generic cell rate algorithm, ITU-T I.371) stores one number per workspace: the
*theoretical arrival time* (TAT), the instant at which the workspace's bucket would be empty
again if requests kept arriving at exactly the policy's rate. With ``T`` the emission interval
(``period / limit``) and ``tau = limit * T`` the burst window, a request at ``now`` is admitted
when ``max(TAT, now) + T - now <= tau``, and then the TAT moves to ``max(TAT, now) + T``.
A fresh workspace can therefore spend its whole ``limit`` at once, then one request per ``T``.

Why not a fixed window counter: it resets at the window edge, so a client can send ``limit``
requests just before the edge and ``limit`` more just after, 2x the limit within a
millisecond. GCRA admits at most ``limit + floor(d / T)`` requests in *any* interval of length
``d`` (wherever it starts): no more than ``limit`` within one emission interval, and the
excess over the steady rate is never more than the burst. Note that with a burst of ``limit``,
a half-open interval of one whole ``period`` can still see up to ``2 * limit - 1`` requests
(a full burst, then the bucket refilling at the steady rate); that is the price of the burst,
and it is bounded, unlike the fixed window's edge.

Everything here is integer microseconds; nothing reads a clock or does I/O. The memory backend
runs :func:`decide` (its admitting path written out inline, held to it by a property test); the
Redis backend runs :data:`GCRA_LUA`, the same math in one atomic server-side call using the
server's clock, and turns its reply into a decision with :func:`decision_from_reply`.
Limiters keep their state by *bucket*: a workspace's bucket is its id, never anything derived
from the policy, so changing a workspace's limit keeps its state instead of handing it a fresh
burst. A root key with a limit of its own has a bucket of its own too, :func:`key_bucket` of
its id; the flow asks for both decisions (see :func:`authcore.flow.rate_limit_step`) and
:func:`tighter` picks the one whose headers are sent.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from typing import Final, NamedTuple, Protocol, TypeAlias, runtime_checkable

import attrs

from authcore.errors import ConfigurationError, UnavailableError

__all__ = [
    "GCRA_LEVELS_LUA",
    "GCRA_LUA",
    "MAX_TIME_US",
    "AsyncRateLimiter",
    "InProcessRateLimiter",
    "Level",
    "LimiterFailurePolicy",
    "RateLimitDecision",
    "RateLimitPolicy",
    "RateLimiter",
    "decide",
    "decide_levels",
    "deciding",
    "decision_from_reply",
    "decisions_from_reply",
    "identity_bucket",
    "key_bucket",
    "rate_limit_key",
    "session_bucket",
    "tighter",
]

_US_PER_SECOND: Final = 1_000_000
_MAX_LIMIT: Final = 1_000_000
_MAX_PERIOD: Final = 86_400  # one day
# The longest burst window any policy has is limit * T < period * 1e6 + limit, so no reset or
# retry_after can exceed this many seconds.
_MAX_WAIT_S: Final = _MAX_PERIOD + 1

# The Redis script computes in Lua numbers, which are IEEE doubles: integers are exact only
# below 2**53. now_us is about 1.8e15 today (2**52 is about 4.5e15, the year 2112), so every
# intermediate value must stay near now_us: never multiply now_us (or a TAT) by anything.
# The largest products are tau = limit * T < period * 1e6 + limit <= 8.64e10 + 1e6 < 2**37,
# and the largest sums are a TAT plus T. Bounding now_us by 2**52 and a stored TAT by
# 2**52 + 2**37 keeps every intermediate below 2**52 + 2**38 < 2**53, in Python and in Lua.
MAX_TIME_US: Final = 2**52
_MAX_TAT_US: Final = MAX_TIME_US + 2**37

# Bounded before matching; "1000000/86400" is 13 characters.
_MAX_POLICY_TEXT: Final = 32
_POLICY_TEXT: Final = re.compile(r"([0-9]{1,7})/([0-9]{1,5})", re.ASCII)


def _check_bound(name: str, value: object, maximum: int) -> None:
    # bool is an int subclass; RateLimitPolicy(True, 60) is a bug, not a limit of 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigurationError(
            f"a rate limit's {name} must be an int, got {type(value).__name__}"
        )
    if not 1 <= value <= maximum:
        raise ConfigurationError(f"a rate limit's {name} must be in 1..{maximum}, got {value}")


def _validate_limit(_instance: object, _attribute: attrs.Attribute[int], value: int) -> None:
    _check_bound("limit", value, _MAX_LIMIT)


def _validate_period(_instance: object, _attribute: attrs.Attribute[int], value: int) -> None:
    _check_bound("period", value, _MAX_PERIOD)


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _constants(limit: int, period: int) -> tuple[int, int]:
    # (T, tau) of a policy, computed once when it is made.
    interval = _ceil_div(period * _US_PER_SECOND, limit)
    return interval, limit * interval


@attrs.frozen
class RateLimitPolicy:
    """``limit`` requests per ``period`` seconds, with a burst of ``limit``.

    Raises:
        ConfigurationError: ``limit`` not in 1..1_000_000 or ``period`` not in 1..86_400
            (or either is not an int; bools are rejected).
    """

    limit: int = attrs.field(validator=_validate_limit)
    period: int = attrs.field(validator=_validate_period)
    # (T, tau) computed once per policy: decide() reads them on every request.
    _interval: int = attrs.field(init=False, eq=False, repr=False)
    _tau: int = attrs.field(init=False, eq=False, repr=False)
    #: The parameters of this policy's item in a ``RateLimit-Policy`` field, ``;q=600;w=60``
    #: (draft-ietf-httpapi-ratelimit-headers-11 §3.1), made once per policy, not per request.
    field_params: bytes = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        interval, tau = _constants(self.limit, self.period)
        object.__setattr__(self, "_interval", interval)
        object.__setattr__(self, "_tau", tau)
        object.__setattr__(self, "field_params", b";q=%d;w=%d" % (self.limit, self.period))

    @property
    def emission_interval_us(self) -> int:
        """Microseconds between requests at the steady rate: ``ceil(period * 1e6 / limit)``.

        Rounded *up* so that the integer limiter never admits more than the policy: with
        ``T >= period / limit``, ``limit`` requests take at least ``period``.
        """
        return self._interval

    @property
    def burst_window_us(self) -> int:
        """GCRA's ``tau``: ``limit * emission_interval_us``, so a fresh bucket holds ``limit``."""
        return self._tau

    @classmethod
    def parse(cls, text: str) -> RateLimitPolicy:
        """Parse ``"N/SECONDS"`` (e.g. ``"100/60"``), the form :meth:`__str__` writes.

        Raises:
            ConfigurationError: the text is not ``N/SECONDS`` or a value is out of range.
        """
        if not isinstance(text, str):
            raise ConfigurationError("rate limit must be a string like '100/60'")
        match = _POLICY_TEXT.fullmatch(text) if len(text) <= _MAX_POLICY_TEXT else None
        if match is None:
            # Echoing a bounded config value is fine: this is developer-facing, never a response.
            shown = text if len(text) <= _MAX_POLICY_TEXT else text[:_MAX_POLICY_TEXT] + "..."
            raise ConfigurationError(
                f"rate limit must look like N/SECONDS (e.g. '100/60'), got {shown!r}"
            )
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.limit}/{self.period}"

    def covers(self, other: RateLimitPolicy) -> bool:
        """Whether ``other`` is at most as loose as this policy: no larger a burst
        (``limit``) and no faster a steady rate (``limit / period``, compared exactly)."""
        return other.limit <= self.limit and other.limit * self.period <= self.limit * other.period


class RateLimitDecision(NamedTuple):
    """The whole answer of one limiter call, in whole numbers.

    ``remaining`` is how many more requests would be admitted right now; ``reset`` is the
    number of seconds (rounded up) until the bucket is full again, what ``RateLimit-Reset``
    sends; ``retry_after`` is the number of seconds (rounded up, at least 1) until the next
    request would be admitted when denied, and 0 when allowed.

    A named tuple rather than an attrs class: it is immutable all the same, and every
    admitted request builds one, where a tuple costs a quarter of a frozen attrs instance.
    """

    allowed: bool
    limit: int
    remaining: int
    reset: int
    retry_after: int


_new: Final = tuple.__new__


def decide(
    tat_us: int | None, now_us: int, policy: RateLimitPolicy
) -> tuple[RateLimitDecision, int]:
    """Decide one request at ``now_us``; return the decision and the TAT to store.

    ``tat_us`` is the stored theoretical arrival time (None: never seen). When the request is
    denied the returned TAT is ``tat_us`` unchanged (or ``now_us`` for a never-seen workspace,
    which cannot be denied). :data:`GCRA_LUA` must stay a line-by-line copy of this function.

    Raises:
        UnavailableError: the stored TAT is out of range (the backing store returned garbage).
        ValueError: ``now_us`` is not in 0..MAX_TIME_US (a bug in the caller's clock).
    """
    if not 0 <= now_us <= MAX_TIME_US:
        raise ValueError(f"now_us must be in 0..{MAX_TIME_US}, got {now_us}")
    tat = now_us if tat_us is None else tat_us
    if not 0 <= tat <= _MAX_TAT_US:
        raise UnavailableError("limiter state is corrupt")
    interval, tau = policy._interval, policy._tau
    new_tat = (tat if tat > now_us else now_us) + interval
    # Every request runs this: the decision built by tuple.__new__ (the named tuple's own
    # __new__ is one Python frame more) and inline ceiling divisions (-(-a // b)) keep it
    # cheap; RateLimitDecision's field order is (allowed, limit, remaining, reset, retry_after).
    if new_tat - now_us > tau:
        # Denied: the state is untouched, so hammering a limited workspace cannot push its
        # recovery further out. The next request fits once now reaches new_tat - tau; that
        # gap is > 0 here, so retry_after >= 1. tat > now_us (tat + T - now > tau >= T).
        reset = -((now_us - tat) // _US_PER_SECOND)
        retry_after = -((now_us + tau - new_tat) // _US_PER_SECOND)
        return _new(RateLimitDecision, (False, policy.limit, 0, reset, retry_after)), tat
    remaining = (tau - (new_tat - now_us)) // interval
    # The bucket is full again once now reaches the stored TAT.
    reset = -((now_us - new_tat) // _US_PER_SECOND)
    return _new(RateLimitDecision, (True, policy.limit, remaining, reset, 0)), new_tat


# One atomic round trip with the server's clock, so all processes share one time source and
# racing callers are serialised by Redis (N callers racing for L slots get exactly L).
# KEYS[1]: the bucket's key (rate_limit_key). ARGV: limit, emission interval (µs), key TTL (s).
# Returns {allowed (0/1), limit, remaining, reset, retry_after}.
# Lua numbers are doubles: see the 2**53 comment above MAX_TIME_US. floor_div corrects the
# rounded quotient so the division is exact; the TAT is written with %.0f because tostring
# would print 1.8e+15 and lose digits. The key expires no earlier than when the bucket is full
# again (an expired key then means exactly "full"), and no earlier than the given TTL.
# The only clock read is the single redis.call('TIME') line (tests substitute a fixed time).
GCRA_LUA: Final[str] = """\
local function floor_div(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end
local function ceil_div(a, b)
  return -floor_div(-a, b)
end

local limit = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
if limit == nil or interval == nil or ttl == nil or limit < 1 or interval < 1 or ttl < 1
    or limit ~= math.floor(limit) or interval ~= math.floor(interval)
    or ttl ~= math.floor(ttl) or ttl > 2147483647 or limit * interval > 137438953472 then
  return redis.error_reply('ERR authcore gcra: bad arguments')
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then
  tat = tonumber(stored)
  if tat == nil or tat < 0 or tat > 4503737066323968 or tat ~= math.floor(tat) then
    return redis.error_reply('ERR authcore gcra: corrupt state')
  end
end

local tau = limit * interval
local new_tat = math.max(tat, now) + interval
if new_tat - now > tau then
  return {0, limit, 0, ceil_div(tat - now, 1000000), ceil_div(new_tat - tau - now, 1000000)}
end

local px = math.max(ttl * 1000, ceil_div(new_tat - now, 1000))
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', px))
return {1, limit, floor_div(tau - (new_tat - now), interval), ceil_div(new_tat - now, 1000000), 0}
"""


def decision_from_reply(
    reply: object, policy: RateLimitPolicy, *, charged: bool = True
) -> RateLimitDecision:
    """Turn a :data:`GCRA_LUA` reply ``[allowed, limit, remaining, reset, retry_after]``.

    Typed ``object`` because a client library hands back whatever the server sent; every
    field is checked against ``policy`` before anyone acts on it. ``charged=False`` reads a
    level of a request another level refused: nothing was taken, so a full bucket's
    ``remaining`` is the whole ``limit``.

    Raises:
        UnavailableError: the reply is not five ints consistent with ``policy``.
    """
    # Concrete types, not the Sequence ABC: an ABC check costs a microsecond per decision,
    # and every Redis client hands an array reply back as a list.
    if not isinstance(reply, list | tuple) or len(reply) != 5:
        raise UnavailableError("limiter returned garbage")
    fields = tuple(reply)
    if not all(isinstance(field, int) and not isinstance(field, bool) for field in fields):
        raise UnavailableError("limiter returned garbage")
    allowed, limit, remaining, reset, retry_after = fields
    # The reply must be something decide() could have produced for this policy. The waits are
    # bounded by the largest burst window of *any* policy, not this one: a TAT stored under an
    # earlier, slower policy can legitimately be further out than this policy's window.
    consistent = (
        limit == policy.limit
        and 0 <= reset <= _MAX_WAIT_S
        and (
            (allowed == 1 and 0 <= remaining < limit + (not charged) and retry_after == 0)
            or (allowed == 0 and remaining == 0 and 1 <= retry_after <= reset)
        )
    )
    if not consistent:
        raise UnavailableError("limiter returned garbage")
    return RateLimitDecision(
        allowed=allowed == 1,
        limit=limit,
        remaining=remaining,
        reset=reset,
        retry_after=retry_after,
    )


class LimiterFailurePolicy(enum.Enum):
    """What to do when the limiter backend is unavailable. There is no "unlimited"."""

    #: Answer 503 (UnavailableError); the default.
    FAIL_CLOSED = "fail_closed"
    #: Fall back to a bounded in-process limiter until the backend is back.
    LOCAL_FALLBACK = "local_fallback"


#: One level of a request's limits: the bucket it is counted in, and the policy there.
Level: TypeAlias = tuple[str, RateLimitPolicy]


class RateLimiter(Protocol):
    """A limiter backend, keyed by bucket only; raises UnavailableError when down.

    A bucket is a workspace's id, or :func:`key_bucket` / :func:`identity_bucket` within it
    for a root key's or an identity's own limit; never anything derived from the policy.
    """

    def hit(self, bucket: str, policy: RateLimitPolicy) -> RateLimitDecision:
        """Count one request in ``bucket`` under ``policy`` and return the decision.

        Raises:
            UnavailableError: the backing system failed.
        """
        ...

    def hit_levels(self, levels: Sequence[Level], /) -> tuple[RateLimitDecision, ...]:
        """Count one request in every level's bucket, or in none (:func:`decide_levels`).

        The buckets all belong to one workspace. One decision per level, in order: the
        request is admitted only if every one admits it, and only then is any bucket charged.

        Raises:
            UnavailableError: the backing system failed.
        """
        ...


class AsyncRateLimiter(Protocol):
    """The async twin of :class:`RateLimiter` (see :class:`InProcessRateLimiter` too)."""

    async def ahit(self, bucket: str, policy: RateLimitPolicy) -> RateLimitDecision:
        """Count one request in ``bucket`` under ``policy`` and return the decision.

        Raises:
            UnavailableError: the backing system failed.
        """
        ...

    async def ahit_levels(self, levels: Sequence[Level], /) -> tuple[RateLimitDecision, ...]:
        """Async twin of :meth:`RateLimiter.hit_levels`.

        Raises:
            UnavailableError: the backing system failed.
        """
        ...


@runtime_checkable
class InProcessRateLimiter(RateLimiter, AsyncRateLimiter, Protocol):
    """A limiter whose state lives in this process (the memory limiter): it never waits on I/O.

    It offers both twins and says so with ``in_process`` (a class attribute, True). Where it
    is the async limiter, the async path calls ``hit`` in place instead of awaiting ``ahit``:
    no coroutine for a decision that has nothing to wait for.
    """

    @property
    def in_process(self) -> bool:
        """True: :meth:`hit` does no I/O, so an async caller may call it without an await."""
        ...


def key_bucket(workspace_id: str, key_id: str) -> str:
    """Return the limiter bucket of a root key's own limit: ``"<workspace id>:key:<key id>"``.

    A limiter keys a workspace's state by the workspace id (``ws_<hex>``, from
    :func:`authcore.tokens.generate_id`), which never holds a colon, so a key's bucket never
    names a workspace's, an identity's or another key's. It starts with its workspace's id
    so that a store that shards by key can keep a request's buckets together (Redis Cluster:
    :func:`rate_limit_key`). Like the workspace's, it is not derived from the policy.
    """
    return f"{workspace_id}:key:{key_id}"


def identity_bucket(workspace_id: str, identity_id: str) -> str:
    """Return the limiter bucket an identity's keys share: ``"<workspace id>:identity:<id>"``.

    As :func:`key_bucket`: never any other level's bucket, grouped with its workspace's.
    """
    return f"{workspace_id}:identity:{identity_id}"


def session_bucket(workspace_id: str, session_id: str) -> str:
    """Return the bucket of a portal session's own limit: ``"<workspace id>:session:<id>"``.

    As :func:`key_bucket`: never any other level's bucket, grouped with its workspace's.
    """
    return f"{workspace_id}:session:{session_id}"


def tighter(first: RateLimitDecision, second: RateLimitDecision) -> RateLimitDecision:
    """Return the decision whose ``RateLimit-*`` headers a client should heed.

    The one with fewer requests remaining; on a tie, the one that is full again later (the
    larger ``reset``); on a full tie, ``first``.
    """
    if second[2] < first[2] or (second[2] == first[2] and second[3] > first[3]):
        return second
    return first


def rate_limit_key(bucket: str, namespace: str = "authcore:rl:") -> str:
    """Return the storage key of a limiter bucket.

    A workspace's bucket is ``<namespace><workspace id>``. A bucket within a workspace (a
    key's or an identity's, ``<workspace id>:...``) is ``{<namespace><workspace id>}:...``:
    the braces are a Redis Cluster hash tag naming exactly the workspace's own key, so all of
    one request's keys live in one slot and one script can decide them together.
    Deliberately not derived from the policy: a new limit must keep the bucket's state. The
    fixed prefix and the braces keep the mapping injective.
    """
    workspace, colon, rest = bucket.partition(":")
    if not colon:
        return f"{namespace}{bucket}"
    return f"{{{namespace}{workspace}}}:{rest}"


# --- several levels at once ---------------------------------------------------------------


def decide_levels(
    tats: Sequence[int | None], now_us: int, policies: Sequence[RateLimitPolicy]
) -> tuple[tuple[RateLimitDecision, ...], tuple[int, ...] | None]:
    """Decide one request at ``now_us`` against several buckets at once (all or nothing).

    ``tats[i]`` is bucket i's stored TAT under ``policies[i]``. The request is admitted only
    when every bucket admits it; then every bucket's new TAT is returned, to be stored
    together. When any bucket refuses, the TATs to store are None: no bucket is charged, so a
    request refused by one level never spends another level's allowance (a key over its own
    limit cannot wear down what its identity's or workspace's other keys share, nor the other
    way round). :data:`GCRA_LEVELS_LUA` must stay a line-by-line copy of this function.

    Raises:
        UnavailableError: a stored TAT is out of range.
        ValueError: ``now_us`` is out of range, or the sequences differ in length or are empty.
    """
    if len(tats) != len(policies) or not policies:
        raise ValueError("decide_levels needs one TAT per policy, and at least one")
    decisions: list[RateLimitDecision] = []
    new_tats: list[int] = []
    for tat, policy in zip(tats, policies, strict=True):
        decision, new_tat = decide(tat, now_us, policy)
        decisions.append(decision)
        new_tats.append(new_tat)
    if all(decision[0] for decision in decisions):
        return tuple(decisions), tuple(new_tats)
    # Refused, so nothing is charged: a level that would have admitted the request reports its
    # state as it stays, one more remaining than the charge would have left and the reset of
    # its stored TAT (what a 429's RateLimit field says of it).
    for i, (tat, decision) in enumerate(zip(tats, decisions, strict=True)):
        if decision[0]:
            held = now_us if tat is None or tat < now_us else tat
            reset = -((now_us - held) // _US_PER_SECOND)
            decisions[i] = _new(RateLimitDecision, (True, decision[1], decision[2] + 1, reset, 0))
    return tuple(decisions), None


def deciding(decisions: Sequence[RateLimitDecision]) -> RateLimitDecision:
    """Return the one decision that stands for ``decisions`` (one per level, all decided
    together): the refusal with the longest wait when any refuses, else the tightest
    (:func:`tighter`, first among equals)."""
    # One pass, no closures: every request with more than one level runs this.
    sent = decisions[0]
    refusal: RateLimitDecision | None = None
    for decision in decisions:
        if not decision[0]:
            if refusal is None or decision[4] > refusal[4]:
                refusal = decision
        elif decision[2] < sent[2] or (decision[2] == sent[2] and decision[3] > sent[3]):
            sent = decision
    return sent if refusal is None else refusal


# The same all-or-nothing GCRA over several keys, in one round trip. KEYS: the buckets' keys
# (on a Redis Cluster they must share a hash slot: see rate_limit_key's ``scope``). ARGV: the
# key TTL (s), then limit and emission interval (µs) per key. Returns 5 integers per key in
# KEYS order: {allowed (0/1), limit, remaining, reset, retry_after}. Nothing is written unless
# every key admits the request. Lua numbers are doubles: see the 2**53 comment above.
GCRA_LEVELS_LUA: Final[str] = """\
local function floor_div(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end
local function ceil_div(a, b)
  return -floor_div(-a, b)
end

local ttl = tonumber(ARGV[1])
local n = #KEYS
if ttl == nil or ttl < 1 or ttl ~= math.floor(ttl) or ttl > 2147483647 or n < 1 or n > 8
    or #ARGV ~= 1 + 2 * n then
  return redis.error_reply('ERR authcore gcra: bad arguments')
end
local limits, intervals = {}, {}
for i = 1, n do
  local limit = tonumber(ARGV[2 * i])
  local interval = tonumber(ARGV[2 * i + 1])
  if limit == nil or interval == nil or limit < 1 or interval < 1
      or limit ~= math.floor(limit) or interval ~= math.floor(interval)
      or limit * interval > 137438953472 then
    return redis.error_reply('ERR authcore gcra: bad arguments')
  end
  limits[i], intervals[i] = limit, interval
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local reply, new_tats, held, admitted = {}, {}, {}, true
for i = 1, n do
  local limit, interval = limits[i], intervals[i]
  local tat = now
  local stored = redis.call('GET', KEYS[i])
  if stored then
    tat = tonumber(stored)
    if tat == nil or tat < 0 or tat > 4503737066323968 or tat ~= math.floor(tat) then
      return redis.error_reply('ERR authcore gcra: corrupt state')
    end
  end
  local tau = limit * interval
  local new_tat = math.max(tat, now) + interval
  local base = 5 * (i - 1)
  if new_tat - now > tau then
    admitted = false
    reply[base + 1], reply[base + 2], reply[base + 3] = 0, limit, 0
    reply[base + 4] = ceil_div(tat - now, 1000000)
    reply[base + 5] = ceil_div(new_tat - tau - now, 1000000)
  else
    new_tats[i], held[i] = new_tat, math.max(tat, now)
    reply[base + 1], reply[base + 2] = 1, limit
    reply[base + 3] = floor_div(tau - (new_tat - now), interval)
    reply[base + 4], reply[base + 5] = ceil_div(new_tat - now, 1000000), 0
  end
end
if admitted then
  for i = 1, n do
    local px = math.max(ttl * 1000, ceil_div(new_tats[i] - now, 1000))
    redis.call('SET', KEYS[i], string.format('%.0f', new_tats[i]), 'PX', string.format('%.0f', px))
  end
else
  for i = 1, n do
    local base = 5 * (i - 1)
    if reply[base + 1] == 1 then
      reply[base + 3] = reply[base + 3] + 1
      reply[base + 4] = ceil_div(held[i] - now, 1000000)
    end
  end
end
return reply
"""


def decisions_from_reply(
    reply: object, policies: Sequence[RateLimitPolicy]
) -> tuple[RateLimitDecision, ...]:
    """Turn a :data:`GCRA_LEVELS_LUA` reply (5 integers per policy) into decisions.

    Raises:
        UnavailableError: the reply is not 5 consistent integers per policy.
    """
    if not isinstance(reply, list | tuple) or len(reply) != 5 * len(policies):
        raise UnavailableError("limiter returned garbage")
    # A refused request charged no level (decide_levels): the others report their state as is.
    charged = all(allowed == 1 for allowed in reply[::5])
    return tuple(
        decision_from_reply(list(reply[5 * i : 5 * i + 5]), policy, charged=charged)
        for i, policy in enumerate(policies)
    )
