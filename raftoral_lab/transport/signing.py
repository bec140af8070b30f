"""Signed payloads: with a cluster secret, every payload a transport publishes is wrapped as

    {"v":1,"src":3,"ctr":1718000000123456,"mac":"<64 hex>","body":<the original JSON>}

so `mosquitto_sub -t 'raftoral/#' -v` stays readable. A body that is not one JSON document
travels as a JSON string, `"text":"..."`, when it is UTF-8 text (the event stream's JSON lines),
and as `"body64":"<base64>"` otherwise. The MAC is HMAC-SHA256, keyed from the secret, over the full
topic, the sender id, the counter and the exact body bytes; a payload moved to another topic (or
another cluster), altered, or signed with another secret does not verify.

The envelope is byte-exact: the header fields in this order, no spaces, the body last, so a
receiver cuts the body out by position and checks the MAC over the very bytes that were signed
(no re-serialising of JSON). Anything else is refused.

The counter (`ctr`) is a hybrid clock: `max(previous + 1, wall clock in microseconds)`. It is
strictly increasing per sender, and a restarted sender starts above everything it sent before
(a process cannot have sent more than one message per microsecond of its life), so a restart
needs no stored state and no coordination. Because it tracks the wall clock, a receiver can
also refuse a first message from a sender it has no record of (it restarted, or never heard
from it) when the counter is older than `max_skew` (10 minutes): captured traffic cannot be
replayed to a freshly restarted node once it is that old.

Each receiver keeps, per sender, the highest counter accepted (`hi`) and the counters accepted
within the replay window below it (`hi - window`, 30 s by default, at most 4096 of them). A
counter above `hi` is new; one inside the window that was not seen yet is a late (reordered)
message and is accepted; anything else is a replay. Counters of a sender are compared across
all topics, which is safe because the topic is under the MAC.

The secret is shared by the whole cluster: it proves that a payload comes from a member, not
from which one (any holder may claim any `src`). It is never stored in clear text here, never
logged, and never part of an error message.
"""

from __future__ import annotations

import binascii
import hashlib
import heapq
import hmac
import json
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

from raftoral_lab.errors import ConfigError
from raftoral_lab.transport.stats import DropReason

ENVELOPE_VERSION = 1
MIN_SECRET_BYTES = 16
"""A shorter secret is refused: guessable secrets make signing theatre."""
SIGNED_OVERHEAD = 192
"""Upper bound of the bytes an envelope adds to a JSON body (src and ctr of up to 20 digits)."""
DEFAULT_REPLAY_WINDOW = 30.0
"""Seconds of counter below a sender's newest one within which late messages are accepted."""
DEFAULT_MAX_SKEW = 600.0
"""Seconds a first message from an unknown sender may lag this node's clock."""
MAX_REMEMBERED = 4096
"""Counters remembered per sender inside the window (the window shrinks beyond that)."""
MAX_SENDERS = 4096
"""Senders remembered per receiver (least recently heard from forgotten first)."""

SECRET_HINT = 'make one with: python -c "import secrets; print(secrets.token_hex(32))"'

_KEY_LABEL = b"raftoral-lab payload signing v1"
_HEADER = re.compile(
    rb'\{"v":(0|[1-9][0-9]{0,8}),"src":(0|[1-9][0-9]{0,19}),"ctr":(0|[1-9][0-9]{0,19}),'
    rb'"mac":"([0-9a-f]{64})","(body|text|body64)":'
)
_LOOSE = re.compile(rb'^\s*\{\s*"v"\s*:.{0,200}"mac"\s*:', re.DOTALL)
"""Tells a damaged envelope (`bad_signature`) from a plain payload (`unsigned`)."""
_SIGNED_PREFIX = re.compile(rb'\s*\{\s*"v"\s*:\s*\d+\s*,\s*"src"\s*:\s*\d+\s*,\s*"ctr"\s*:')
"""What a transport without a secret takes for a signed payload: specific enough never to
catch a plain one (a Raft batch's third field is `msgs`, a request's `id`)."""
_BOM = b"\xef\xbb\xbf"


def generate_secret() -> str:
    """A good cluster secret: 32 random bytes as 64 hex characters."""
    return secrets.token_hex(32)


def check_secret(secret: object) -> bytes:
    """The secret as bytes; ConfigError (without the secret in it) when it cannot be used."""
    if isinstance(secret, str):
        raw = secret.encode()
    elif isinstance(secret, bytes | bytearray):
        raw = bytes(secret)
    else:
        raise ConfigError(
            f"the cluster secret must be a string or bytes, got {type(secret).__name__}"
        )
    if len(raw) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"the cluster secret is too short ({len(raw)} bytes; at least {MIN_SECRET_BYTES} "
            f"are needed, and it should be random): {SECRET_HINT}"
        )
    return raw


def looks_signed(payload: bytes) -> bool:
    """True if `payload` is a signed envelope (possibly damaged), for a transport without a
    secret to refuse it with a clear reason rather than parse it as garbage."""
    return _SIGNED_PREFIX.match(payload) is not None


class Refused(Exception):
    """A payload that must not be acted on: `reason` is the counter it goes to."""

    def __init__(self, reason: DropReason, detail: str, src: int | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.src = src


class _Window:
    """Counters accepted from one sender: everything at or below `floor` is refused, and
    `seen` holds the accepted ones above it."""

    __slots__ = ("floor", "heap", "hi", "seen")

    def __init__(self, ctr: int, span: int) -> None:
        self.hi = ctr
        self.floor = ctr - span
        self.seen: set[int] = {ctr}
        self.heap: list[int] = [ctr]

    def accept(self, ctr: int, span: int, cap: int) -> bool:
        heap, seen = self.heap, self.seen
        if ctr > self.hi:
            self.hi = ctr
            if ctr - span > self.floor:
                self.floor = ctr - span
                while heap and heap[0] <= self.floor:
                    seen.discard(heapq.heappop(heap))
        elif ctr <= self.floor or ctr in seen:
            return False
        seen.add(ctr)
        heapq.heappush(heap, ctr)
        while len(heap) > cap:
            oldest = heapq.heappop(heap)
            seen.discard(oldest)
            self.floor = max(self.floor, oldest)
        return True


def _wall_clock_us() -> int:
    return time.time_ns() // 1000


def _is_json(payload: bytes) -> bool:
    """Whether `payload` can sit as it is inside the envelope: one strict JSON document in
    UTF-8 (json.loads also takes UTF-16 and UTF-32, whose NUL bytes have no place in ours)."""
    if payload.startswith(_BOM) or b"\x00" in payload:
        return False
    try:
        _strict_json(payload.decode())
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return False
    return True


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


_strict_json = json.JSONDecoder(parse_constant=_no_constants).decode


_text_dumps = json.JSONEncoder(ensure_ascii=False).encode


class Signer:
    """Seals the payloads of one sender and opens those of everyone (one per transport).

    `clock` returns microseconds (injectable for tests); `replay_window` and `max_skew` are
    seconds (`max_skew=None` accepts a first message of any age).
    """

    def __init__(
        self,
        secret: str | bytes,
        sender: int,
        *,
        replay_window: float = DEFAULT_REPLAY_WINDOW,
        max_skew: float | None = DEFAULT_MAX_SKEW,
        max_remembered: int = MAX_REMEMBERED,
        max_senders: int = MAX_SENDERS,
        clock: Callable[[], int] = _wall_clock_us,
    ) -> None:
        key = hmac.new(check_secret(secret), _KEY_LABEL, hashlib.sha256).digest()
        self._base = hmac.new(key, digestmod=hashlib.sha256)
        self.sender = sender
        if not replay_window > 0:
            raise ConfigError(
                f"replay_window must be a positive number of seconds, got {replay_window!r}"
            )
        if max_skew is not None and not max_skew > 0:
            raise ConfigError(f"max_skew must be positive seconds or None, got {max_skew!r}")
        self._span = int(replay_window * 1_000_000)
        self._max_skew = None if max_skew is None else int(max_skew * 1_000_000)
        self._cap = max_remembered
        self._max_senders = max_senders
        self._clock = clock
        self._ctr = 0
        self._windows: OrderedDict[int, _Window] = OrderedDict()

    def __repr__(self) -> str:  # never shows the key
        return f"Signer(sender={self.sender}, senders_known={len(self._windows)})"

    # --- sending -----------------------------------------------------------------------------

    def next_counter(self) -> int:
        self._ctr = ctr = max(self._ctr + 1, self._clock())
        return ctr

    def _mac(self, topic: bytes, src: int, ctr: int, body: bytes) -> bytes:
        h = self._base.copy()
        h.update(b"%d:%s%d:%d:" % (len(topic), topic, src, ctr))
        h.update(body)
        return h.hexdigest().encode()

    def seal(self, topic: str, payload: bytes, *, json_body: bool | None = None) -> bytes:
        """The envelope for `payload` published on the full `topic`. `json_body` says whether
        the payload is one JSON document (None: check); JSON travels as it is, other UTF-8
        text as a JSON string, anything else as base64."""
        ctr = self.next_counter()
        src = self.sender
        mac = self._mac(topic.encode(), src, ctr, payload)
        if json_body is None:
            json_body = _is_json(payload)
        if json_body:
            return b'{"v":1,"src":%d,"ctr":%d,"mac":"%s","body":%s}' % (src, ctr, mac, payload)
        try:
            text = _text_dumps(payload.decode()).encode()
        except UnicodeDecodeError:
            pass
        else:
            return b'{"v":1,"src":%d,"ctr":%d,"mac":"%s","text":%s}' % (src, ctr, mac, text)
        b64 = binascii.b2a_base64(payload, newline=False)
        return b'{"v":1,"src":%d,"ctr":%d,"mac":"%s","body64":"%s"}' % (src, ctr, mac, b64)

    # --- receiving ---------------------------------------------------------------------------

    def open(self, topic: str, payload: bytes, *, check_replay: bool = True) -> tuple[int, bytes]:
        """(sender, body) of a valid envelope received on the full `topic`; `Refused` when the
        payload is unsigned, forged, moved, replayed or too old. Nothing about a sender is
        remembered before its MAC checked out, so forgeries cost no memory."""
        m = _HEADER.match(payload)
        if m is None:
            if _LOOSE.match(payload) is not None:
                raise Refused(DropReason.BAD_SIGNATURE, "not a well-formed signed envelope")
            raise Refused(
                DropReason.UNSIGNED,
                "unsigned payload (this node has a cluster secret and accepts signed ones only)",
            )
        version = int(m[1])
        if version != ENVELOPE_VERSION:
            raise Refused(
                DropReason.BAD_SIGNATURE,
                f"envelope version {version} is not ours ({ENVELOPE_VERSION})",
            )
        src, ctr = int(m[2]), int(m[3])
        if not payload.endswith(b"}"):
            raise Refused(DropReason.BAD_SIGNATURE, "signed envelope is not closed", src)
        body = payload[m.end() : -1]
        if m[5] == b"text":
            try:
                text = json.loads(body)
                if type(text) is not str:
                    raise ValueError("not a string")
                body = text.encode()
            except (ValueError, RecursionError, UnicodeError):
                raise Refused(DropReason.BAD_SIGNATURE, "text is not a JSON string", src) from None
        elif m[5] == b"body64":
            if len(body) < 2 or body[0] != 0x22 or body[-1] != 0x22:
                raise Refused(DropReason.BAD_SIGNATURE, "body64 is not a string", src)
            try:
                body = binascii.a2b_base64(body[1:-1], strict_mode=True)
            except (binascii.Error, ValueError):
                raise Refused(DropReason.BAD_SIGNATURE, "body64 is not base64", src) from None
        expected = self._mac(topic.encode(), src, ctr, body)
        if not hmac.compare_digest(expected, m[4]):
            raise Refused(
                DropReason.BAD_SIGNATURE,
                f"signature of a payload claiming to come from node {src} does not match: "
                "forged, altered, moved from another topic, or signed with another secret",
                src,
            )
        if check_replay:
            self._admit(src, ctr)
        return src, body

    def _admit(self, src: int, ctr: int) -> None:
        windows = self._windows
        window = windows.get(src)
        if window is None:
            if self._max_skew is not None:
                lag = self._clock() - ctr
                if lag > self._max_skew:
                    raise Refused(
                        DropReason.STALE,
                        f"first payload from node {src} is {lag / 1e6:.0f} s old (more than "
                        f"{self._max_skew / 1e6:.0f} s): a replay, or that node's clock is wrong",
                        src,
                    )
            windows[src] = _Window(ctr, self._span)
            if len(windows) > self._max_senders:
                windows.popitem(last=False)
            return
        windows.move_to_end(src)
        if not window.accept(ctr, self._span, self._cap):
            raise Refused(
                DropReason.REPLAYED,
                f"payload from node {src} with counter {ctr} was seen already or is older than "
                f"the replay window (newest seen {window.hi})",
                src,
            )

    def forget(self, src: int | None = None) -> None:
        """Forget what was seen from one sender (or all), as a restart of this node would."""
        if src is None:
            self._windows.clear()
        else:
            self._windows.pop(src, None)
