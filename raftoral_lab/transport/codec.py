"""JSON wire form of Raft messages, readable with `mosquitto_sub -t 'raftoral/#' -v`.

A payload is one batch from one sender to one destination:

    {"v": 1, "src": 1, "msgs": [{"kind": "heartbeat", "group": 0, "src": 1, "dst": 2,
                                 "term": 3, "commit": 7}, ...]}

Bytes (entry and snapshot data) travel as base64 strings, sets as sorted lists. The decoder
trusts nothing: any input either decodes into valid messages for the expected node or raises
`MalformedMessage` with a reason a person can act on; no other exception escapes.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from raftoral_lab.core.messages import (
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    RequestVote,
    TimeoutNow,
    VoteResponse,
)
from raftoral_lab.core.types import ConfState, Entry, EntryKind, Snapshot, SnapshotMeta
from raftoral_lab.errors import MalformedMessage

SCHEMA_VERSION = 1
DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024
"""Bytes; a bigger payload is refused before parsing (mosquitto's own cap is 256 MB)."""

_dumps = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
_loads = json.loads
_b2a = binascii.b2a_base64
_a2b = binascii.a2b_base64
_CONF_CHANGE = EntryKind.CONF_CHANGE
_NORMAL = EntryKind.NORMAL


def _b64(data: bytes) -> str:
    return _b2a(data, newline=False).decode("ascii")


# --- encoding --------------------------------------------------------------------------------


def _enc_entry(e: Entry) -> dict[str, Any]:
    if e.kind is _NORMAL:
        return {"index": e.index, "term": e.term, "data": _b64(e.data)}
    return {"index": e.index, "term": e.term, "data": _b64(e.data), "kind": e.kind.value}


def _enc_snapshot(s: Snapshot) -> dict[str, Any]:
    meta = s.meta
    return {
        "meta": {
            "index": meta.index,
            "term": meta.term,
            "conf": {"voters": sorted(meta.conf.voters), "learners": sorted(meta.conf.learners)},
        },
        "data": _b64(s.data),
    }


def _enc_request_vote(m: Any) -> dict[str, Any]:
    return {
        "kind": "pre_vote" if m.pre_vote else "request_vote",
        "group": m.group, "src": m.src, "dst": m.dst, "term": m.term,
        "last_log_index": m.last_log_index, "last_log_term": m.last_log_term,
        "transfer": m.transfer,
    }  # fmt: skip


def _enc_vote_response(m: Any) -> dict[str, Any]:
    return {
        "kind": "pre_vote_response" if m.pre_vote else "vote_response",
        "group": m.group, "src": m.src, "dst": m.dst, "term": m.term, "granted": m.granted,
    }  # fmt: skip


def _enc_append_entries(m: Any) -> dict[str, Any]:
    return {
        "kind": "append_entries",
        "group": m.group, "src": m.src, "dst": m.dst, "term": m.term,
        "prev_log_index": m.prev_log_index, "prev_log_term": m.prev_log_term,
        "leader_commit": m.leader_commit,
        "entries": [
            {"index": e.index, "term": e.term, "data": _b2a(e.data, newline=False).decode()}
            if e.kind is _NORMAL
            else _enc_entry(e)
            for e in m.entries
        ],
    }  # fmt: skip


def _enc_append_response(m: Any) -> dict[str, Any]:
    return {
        "kind": "append_response",
        "group": m.group, "src": m.src, "dst": m.dst, "term": m.term, "success": m.success,
        "match_index": m.match_index, "hint_index": m.hint_index, "hint_term": m.hint_term,
    }  # fmt: skip


def _enc_heartbeat(m: Any) -> dict[str, Any]:
    return {
        "kind": "heartbeat",
        "group": m.group, "src": m.src, "dst": m.dst, "term": m.term, "commit": m.commit,
    }  # fmt: skip


def _enc_simple(kind: str) -> Callable[[Any], dict[str, Any]]:
    def enc(m: Any) -> dict[str, Any]:
        return {"kind": kind, "group": m.group, "src": m.src, "dst": m.dst, "term": m.term}

    return enc


def _enc_install_snapshot(m: Any) -> dict[str, Any]:
    return {
        "kind": "install_snapshot",
        "group": m.group, "src": m.src, "dst": m.dst, "term": m.term,
        "snapshot": _enc_snapshot(m.snapshot),
    }  # fmt: skip


_ENCODERS: dict[type, Callable[[Any], dict[str, Any]]] = {
    RequestVote: _enc_request_vote,
    VoteResponse: _enc_vote_response,
    AppendEntries: _enc_append_entries,
    AppendResponse: _enc_append_response,
    Heartbeat: _enc_heartbeat,
    HeartbeatResponse: _enc_simple("heartbeat_response"),
    InstallSnapshot: _enc_install_snapshot,
    TimeoutNow: _enc_simple("timeout_now"),
}


def message_to_dict(msg: Message) -> dict[str, Any]:
    """The JSON-ready dict of one message (also what events and tools can show)."""
    try:
        enc = _ENCODERS[type(msg)]
    except KeyError:
        raise TypeError(f"not a Raft message: {type(msg).__name__}") from None
    return enc(msg)


def encode_batch(src: int, messages: Iterable[Message]) -> bytes:
    """One payload carrying `messages` (all from `src`, normally all to one destination)."""
    encoders = _ENCODERS
    try:
        msgs = [encoders[type(m)](m) for m in messages]
    except KeyError as exc:
        raise TypeError(f"not a Raft message: {exc.args[0].__name__}") from None
    return _dumps({"v": SCHEMA_VERSION, "src": src, "msgs": msgs}).encode()


def encode_batches(
    src: int, messages: Sequence[Message], max_bytes: int = DEFAULT_MAX_PAYLOAD
) -> tuple[list[tuple[bytes, Sequence[Message]]], list[Message]]:
    """Payloads of at most `max_bytes` for `messages`, in order, each with the messages it
    carries; plus the messages too large to send even alone (the caller drops and counts them).

    A batch that is too big is split in halves, so the common case costs one encoding.
    """
    out: list[tuple[bytes, Sequence[Message]]] = []
    too_large: list[Message] = []
    pending: list[Sequence[Message]] = [messages]
    while pending:
        chunk = pending.pop()
        if not chunk:
            continue
        payload = encode_batch(src, chunk)
        if len(payload) <= max_bytes:
            out.append((payload, chunk))
        elif len(chunk) == 1:
            too_large.append(chunk[0])
        else:
            half = len(chunk) // 2
            pending.append(chunk[half:])  # popped second: keeps the order
            pending.append(chunk[:half])
    return out, too_large


# --- decoding --------------------------------------------------------------------------------


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_name(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", float: "number",
            int: "integer", type(None): "null"}.get(type(value), type(value).__name__)  # fmt: skip


class _Fields:
    """Typed access to one JSON object, with errors that name the place and the field."""

    __slots__ = ("d", "where")

    def __init__(self, d: dict[str, Any], where: str) -> None:
        self.d = d
        self.where = where

    def _get(self, key: str) -> Any:
        try:
            return self.d[key]
        except KeyError:
            raise MalformedMessage(f"{self.where}: missing field {key!r}") from None

    def get_int(self, key: str, default: int | None = None) -> int:
        v = self.d.get(key, default) if default is not None else self._get(key)
        if type(v) is not int or v < 0:
            raise MalformedMessage(
                f"{self.where}: field {key!r} must be a non-negative integer, "
                f"got {_type_name(v)} {_show(v)}"
            )
        return v

    def get_bool(self, key: str, default: bool | None = None) -> bool:
        v = self.d.get(key, default) if default is not None else self._get(key)
        if type(v) is not bool:
            raise MalformedMessage(
                f"{self.where}: field {key!r} must be true or false, got {_type_name(v)} {_show(v)}"
            )
        return v

    def get_bytes(self, key: str) -> bytes:
        return _unb64(self._get(key), f"{self.where}: field {key!r}")

    def get_obj(self, key: str) -> _Fields:
        v = self._get(key)
        if type(v) is not dict:
            raise MalformedMessage(
                f"{self.where}: field {key!r} must be an object, got {_type_name(v)} {_show(v)}"
            )
        return _Fields(v, f"{self.where}.{key}")

    def get_list(self, key: str) -> list[Any]:
        v = self._get(key)
        if type(v) is not list:
            raise MalformedMessage(
                f"{self.where}: field {key!r} must be an array, got {_type_name(v)} {_show(v)}"
            )
        return v

    def get_id_set(self, key: str) -> frozenset[int]:
        items = self.get_list(key)
        for x in items:
            if type(x) is not int or x < 0:
                raise MalformedMessage(
                    f"{self.where}: field {key!r} must hold node ids, "
                    f"got {_type_name(x)} {_show(x)}"
                )
        return frozenset(items)


def _unb64(v: object, what: str) -> bytes:
    if type(v) is not str:
        raise MalformedMessage(f"{what} must be a base64 string, got {_type_name(v)} {_show(v)}")
    try:
        return _a2b(v, strict_mode=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII text
        raise MalformedMessage(f"{what} is not valid base64 ({exc})") from None


def _dec_entry(raw: object, where: str) -> Entry:
    """The careful path for one entry; `_dec_append_entries` only calls it on a bad entry."""
    if type(raw) is not dict:
        raise MalformedMessage(f"{where} must be an object, got {_type_name(raw)} {_show(raw)}")
    f = _Fields(raw, where)
    index, term, data = f.get_int("index"), f.get_int("term"), f.get_bytes("data")
    kind = raw.get("kind", "normal")
    if kind == "normal":
        return Entry(index, term, data)
    if kind == "conf_change":
        return Entry(index, term, data, _CONF_CHANGE)
    raise MalformedMessage(
        f"{where}: field 'kind' must be 'normal' or 'conf_change', got {_show(kind)}"
    )


def _dec_entries(raw: list[Any], where: str) -> tuple[Entry, ...]:
    out: list[Entry] = []
    append = out.append
    a2b = _a2b
    for i, e in enumerate(raw):
        # fast path for the common, well-formed normal entry; anything else takes the careful
        # path, which either builds the entry or explains what is wrong with it
        if type(e) is dict and len(e) == 3:
            index = e.get("index")
            term = e.get("term")
            data = e.get("data")
            if (
                type(index) is int
                and type(term) is int
                and type(data) is str
                and index >= 0
                and term >= 0
            ):
                try:
                    append(Entry(index, term, a2b(data, strict_mode=True)))
                    continue
                except ValueError:
                    pass
        append(_dec_entry(e, f"{where}.entries[{i}]"))
    return tuple(out)


def _dec_request_vote(f: _Fields, kind: str, group: int, src: int, dst: int, term: int) -> Message:
    return RequestVote(
        group, src, dst, term, f.get_int("last_log_index"), f.get_int("last_log_term"),
        pre_vote=kind == "pre_vote", transfer=f.get_bool("transfer", False),
    )  # fmt: skip


def _dec_vote_response(f: _Fields, kind: str, group: int, src: int, dst: int, term: int) -> Message:
    return VoteResponse(
        group, src, dst, term, f.get_bool("granted"), pre_vote=kind == "pre_vote_response"
    )


def _dec_append_entries(
    f: _Fields, kind: str, group: int, src: int, dst: int, term: int
) -> Message:
    return AppendEntries(
        group, src, dst, term, f.get_int("prev_log_index"), f.get_int("prev_log_term"),
        _dec_entries(f.get_list("entries"), f.where), f.get_int("leader_commit"),
    )  # fmt: skip


def _dec_append_response(
    f: _Fields, kind: str, group: int, src: int, dst: int, term: int
) -> Message:
    return AppendResponse(
        group, src, dst, term, f.get_bool("success"), f.get_int("match_index"),
        f.get_int("hint_index", 0), f.get_int("hint_term", 0),
    )  # fmt: skip


def _dec_heartbeat(f: _Fields, kind: str, group: int, src: int, dst: int, term: int) -> Message:
    return Heartbeat(group, src, dst, term, f.get_int("commit"))


def _dec_heartbeat_response(
    f: _Fields, kind: str, group: int, src: int, dst: int, term: int
) -> Message:
    return HeartbeatResponse(group, src, dst, term)


def _dec_timeout_now(f: _Fields, kind: str, group: int, src: int, dst: int, term: int) -> Message:
    return TimeoutNow(group, src, dst, term)


def _dec_install_snapshot(
    f: _Fields, kind: str, group: int, src: int, dst: int, term: int
) -> Message:
    snap = f.get_obj("snapshot")
    meta = snap.get_obj("meta")
    conf = meta.get_obj("conf")
    snapshot = Snapshot(
        SnapshotMeta(
            meta.get_int("index"),
            meta.get_int("term"),
            ConfState(conf.get_id_set("voters"), conf.get_id_set("learners")),
        ),
        snap.get_bytes("data"),
    )
    return InstallSnapshot(group, src, dst, term, snapshot)


_Decoder = Callable[[_Fields, str, int, int, int, int], Message]
_DECODERS: dict[str, _Decoder] = {
    "pre_vote": _dec_request_vote,
    "request_vote": _dec_request_vote,
    "pre_vote_response": _dec_vote_response,
    "vote_response": _dec_vote_response,
    "append_entries": _dec_append_entries,
    "append_response": _dec_append_response,
    "heartbeat": _dec_heartbeat,
    "heartbeat_response": _dec_heartbeat_response,
    "install_snapshot": _dec_install_snapshot,
    "timeout_now": _dec_timeout_now,
}
KNOWN_KINDS: frozenset[str] = frozenset(_DECODERS)


def message_from_dict(raw: object, where: str = "message") -> Message:
    """One message from its JSON dict; MalformedMessage when anything does not fit."""
    if type(raw) is not dict:
        raise MalformedMessage(f"{where} must be an object, got {_type_name(raw)} {_show(raw)}")
    kind = raw.get("kind")
    if type(kind) is not str:
        raise MalformedMessage(
            f"{where}: field 'kind' must be a string, got {_type_name(kind)} {_show(kind)}"
        )
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise MalformedMessage(
            f"{where}: unknown message kind {_show(kind)} (known: {', '.join(sorted(_DECODERS))})"
        )
    f = _Fields(raw, f"{where} ({kind})")
    get = f.get_int
    return decoder(f, kind, get("group"), get("src"), get("dst"), get("term"))


def decode_batch(
    payload: bytes | bytearray, *, expect_dst: int, max_bytes: int = DEFAULT_MAX_PAYLOAD
) -> list[Message]:
    """The messages of one payload received by node `expect_dst`.

    Raises MalformedMessage (and nothing else) when the payload is not a valid batch for us.
    """
    try:
        return _decode_batch(payload, expect_dst, max_bytes)
    except MalformedMessage:
        raise
    except Exception as exc:  # a last guard: the transport's receive loop must never die
        raise MalformedMessage(f"undecodable payload ({type(exc).__name__}: {exc})") from exc


def _decode_batch(payload: object, expect_dst: int, max_bytes: int) -> list[Message]:
    if isinstance(payload, memoryview):
        payload = payload.tobytes()
    if not isinstance(payload, bytes | bytearray):
        raise MalformedMessage(f"payload must be bytes, got {type(payload).__name__}")
    size = len(payload)
    if size > max_bytes:
        raise MalformedMessage(f"payload of {size} bytes is over the limit of {max_bytes} bytes")
    try:
        obj = _loads(payload)
    except RecursionError:
        raise MalformedMessage("not JSON we accept: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise MalformedMessage(f"not JSON: {exc}") from None
    if type(obj) is not dict:
        raise MalformedMessage(f"payload must be a JSON object, got {_type_name(obj)}")
    header = _Fields(obj, "batch")
    version = obj.get("v")
    if type(version) is not int:
        raise MalformedMessage(
            f"batch: field 'v' (schema version) must be an integer, got {_show(version)}"
        )
    if version > SCHEMA_VERSION:
        raise MalformedMessage(
            f"schema version {version} is newer than ours ({SCHEMA_VERSION}): "
            "upgrade raftoral_lab on this node"
        )
    if version < 1:
        raise MalformedMessage(
            f"schema version {version} is not supported (ours is {SCHEMA_VERSION})"
        )
    src = header.get_int("src")
    raw_msgs = header.get_list("msgs")
    out: list[Message] = []
    for i, raw in enumerate(raw_msgs):
        msg = message_from_dict(raw, f"msgs[{i}]")
        if msg.dst != expect_dst:
            raise MalformedMessage(
                f"msgs[{i}] ({msg.kind}) is for node {msg.dst}, not for this node ({expect_dst})"
            )
        if msg.src != src:
            raise MalformedMessage(
                f"msgs[{i}] ({msg.kind}) claims src {msg.src} in a batch from node {src}"
            )
        out.append(msg)
    return out
