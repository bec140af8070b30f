"""Bad input everywhere (issue 10, item 4): every `raftoral-lab` subcommand's flags and the main
API arguments, fed bad values by Hypothesis.

A command given a bad value must exit with status 2 (argparse's usage error, or our
RaftoralError path) and say on stderr what was wrong, with no traceback, before it starts any
long-running work: the places where work starts (connecting to a broker, starting a broker, a
Lab, a dashboard server, a simulation, a benchmark, a chaos run) are replaced here by a tripwire
that fails the test, so a bad value that slips through is caught at once and never hangs. A
node's data directory is neither created nor changed by a refused command.

An API call with a bad argument raises a RaftoralError subclass whose message names what was
wrong, never a bare TypeError or AttributeError; committed state stays as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import math
import shutil
import string
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# imported up front, so that the first example of a command does not pay for the imports
import raftoral_lab.bench.commit
import raftoral_lab.bench.core
import raftoral_lab.bench.dashboard
import raftoral_lab.bench.events
import raftoral_lab.bench.workflows
import raftoral_lab.chaos.runner
import raftoral_lab.dashboard.controls
import raftoral_lab.dashboard.model
import raftoral_lab.dashboard.serve
import raftoral_lab.lab
import raftoral_lab.transport.broker
import raftoral_lab.transport.mosquitto
import raftoral_lab.transport.mqtt
from raftoral_lab import Lab, WorkflowApp, WorkflowContext
from raftoral_lab.cli.main import main
from raftoral_lab.core import RaftConfig
from raftoral_lab.errors import RaftoralError
from raftoral_lab.sim import Simulation
from raftoral_lab.storage import SQLiteStorage

SCRATCH = Path(tempfile.mkdtemp(prefix="raftoral-bad-input-"))
"""Files the commands may be pointed at; nothing here is ever written by a refused command."""
A_FILE = SCRATCH / "a-file.txt"
A_FILE.write_text("not a directory, not a recording, not a certificate\n")
MISSING = SCRATCH / "missing"
"""Never created: a file or directory that does not exist."""
CLOSED_BROKER = "mqtt://127.0.0.1:9"
"""A well-formed URL: a command that accepted everything would try to connect here (and trip)."""

FAST = settings(
    max_examples=40,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- the tripwire ------------------------------------------------------------------------------


class WorkStarted(BaseException):  # a tripwire, not an error of the package
    """Long-running work began: the input was accepted."""


def _tripwire(name: str) -> Any:
    def started(*args: object, **kwargs: object) -> Any:
        raise WorkStarted(name)

    return started


WORK = [
    (raftoral_lab.transport.mqtt.MqttTransport, "start"),
    (raftoral_lab.transport.broker.EmbeddedBroker, "start"),
    (raftoral_lab.transport.mosquitto.MosquittoProcess, "start"),
    (raftoral_lab.lab.Lab, "start"),
    (raftoral_lab.dashboard.serve, "start_server"),
    (raftoral_lab.bench.core, "run"),
    (raftoral_lab.bench.commit, "run"),
    (raftoral_lab.bench.workflows, "run"),
    (raftoral_lab.bench.events, "run"),
    (raftoral_lab.bench.dashboard, "measure"),
    (raftoral_lab.chaos.runner.ChaosRunner, "run"),
]
with contextlib.suppress(ImportError):  # `bench scale` (issue 9) where it exists
    import raftoral_lab.bench.scale

    WORK.append((raftoral_lab.bench.scale, "run"))


@pytest.fixture(scope="module", autouse=True)
def no_work() -> Iterator[None]:
    import raftoral_lab.cli.sim

    with pytest.MonkeyPatch.context() as patch:
        for owner, name in WORK:
            patch.setattr(owner, name, _tripwire(f"{getattr(owner, '__name__', owner)}.{name}"))
        patch.setattr(raftoral_lab.cli.sim, "_outcomes", _tripwire("the simulation seeds"))
        patch.delenv("RAFTORAL_SECRET", raising=False)
        patch.delenv("RAFTORAL_MQTT_PASSWORD", raising=False)
        yield
    shutil.rmtree(SCRATCH, ignore_errors=True)


def run_cli(argv: list[str]) -> tuple[int, str]:
    """(exit status, stderr) of `raftoral-lab *argv`, in this process."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as stop:
            # as the interpreter would exit: None is 0, a message (not a number) is 1
            code = 0 if stop.code is None else stop.code if isinstance(stop.code, int) else 1
        except WorkStarted as tripped:
            pytest.fail(f"raftoral-lab {' '.join(map(repr, argv))} started work ({tripped})")
    return code, err.getvalue()


def assert_refused(argv: list[str], *words: str) -> str:
    code, err = run_cli(argv)
    shown = f"raftoral-lab {argv!r} -> {code}:\n{err}"
    assert code == 2, shown
    assert "Traceback" not in err, shown
    assert err.startswith("usage:") or err.startswith(f"raftoral-lab {argv[0]}"), shown
    lowered = err.lower()
    assert any(w.lower() in lowered for w in words), f"none of {words} said; {shown}"
    return err


# --- bad values ---------------------------------------------------------------------------------


def _is_whole(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


garbage = st.text(max_size=24).filter(lambda t: not _is_number(t))
"""Strings that are no number at all (control characters and NULs included)."""

bad_counts = st.one_of(
    st.integers(max_value=0).map(str),
    garbage,
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()).map(repr),
)
"""Values a count (at least 1) must refuse."""

bad_seconds = st.one_of(
    st.floats(max_value=0.0, allow_nan=False).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "NaN", "infinity", "1e999"]),
    garbage,
)
"""Values a positive, finite number of seconds must refuse."""

bad_ports = st.one_of(
    st.integers(max_value=-1).map(str),
    st.integers(min_value=65536).map(str),
    garbage.filter(lambda t: not _is_whole(t)),
)

bad_urls = st.one_of(
    st.text(max_size=30).filter(lambda t: not t.lower().startswith(("mqtt://", "mqtts://"))),
    st.sampled_from(
        [
            "mqtt://",
            "mqtt://:1883",
            "mqtt://127.0.0.1:0",
            "mqtt://127.0.0.1:65536",
            "mqtt://127.0.0.1:-1",
            "mqtt://127.0.0.1:port",
            "mqtt://host/path",
            "mqtt://host?query=1",
            "mqtt://host#fragment",
            "http://127.0.0.1:1883",
            "tcp://127.0.0.1:1883",
            "mqtts://",
        ]
    ),
    st.integers(min_value=65536, max_value=10**9).map(lambda p: f"mqtt://127.0.0.1:{p}"),
)

bad_clusters = st.one_of(
    st.just(""),
    st.text(min_size=65, max_size=80, alphabet=string.ascii_letters),
    st.tuples(st.text(max_size=8), st.sampled_from("/+# \x00"), st.text(max_size=8)).map("".join),
)

missing_files = st.text(
    alphabet=string.ascii_letters + string.digits + "._-", min_size=1, max_size=20
).map(lambda name: str(MISSING / name))

bad_hosts = st.text(min_size=1, max_size=20).filter(
    lambda t: any(c not in string.ascii_letters + string.digits + ".-:" for c in t)
)


def fresh_data_dir() -> Path:
    return Path(tempfile.mkdtemp(dir=SCRATCH)) / "node"


# --- every command, every flag -----------------------------------------------------------------

BROKER_FLAGS = [
    ("--broker", bad_urls, ("broker", "url")),
    ("--cluster", bad_clusters, ("cluster",)),
    ("--secret-file", missing_files, ("secret file",)),
    ("--tls-ca", missing_files, ("tls ca",)),
    (
        "--secret",  # too short to be a secret (16 bytes at least)
        st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=15),
        ("secret",),
    ),
]
"""Flags of every command that talks to a broker (cli/common.py)."""

CASES: dict[str, tuple[list[str], list[tuple[str, st.SearchStrategy[str], tuple[str, ...]]]]] = {
    # command: (valid arguments that would start work, [(flag, bad values, words of the message)])
    "sim": (
        ["sim", "--seeds", "1", "--ticks", "10", "--jobs", "1"],
        [
            ("--seeds", bad_counts, ("--seeds",)),
            ("--ticks", bad_counts, ("--ticks",)),
            ("--nodes", st.one_of(bad_counts, st.integers(1001, 10**12).map(str)), ("--nodes",)),
            ("--jobs", bad_counts, ("--jobs",)),
            ("--first-seed", garbage.filter(lambda t: not _is_whole(t)), ("--first-seed",)),
            ("--seed", garbage.filter(lambda t: not _is_whole(t)), ("--seed",)),
            (
                "--faults",
                st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12).filter(
                    lambda t: (
                        t
                        not in (
                            "all",
                            "none",
                            "partition",
                            "crash",
                            "drop",
                            "delay",
                            "duplicate",
                            "compact",
                            "membership",
                            "transfer",
                        )
                    )
                ),
                ("fault",),
            ),
        ],
    ),
    "node": (
        ["node", "--broker", CLOSED_BROKER, "--bootstrap"],
        [
            *BROKER_FLAGS,
            ("--id", bad_counts, ("--id",)),
            ("--voters", st.one_of(garbage, st.just("2,3"), st.just("0,1")), ("--voters",)),
            ("--tick", bad_seconds, ("--tick",)),
            ("--election-ticks", st.one_of(bad_counts, st.just("1")), ("election",)),
            ("--compact-every", bad_counts, ("--compact-every",)),
            (
                "--app",
                st.one_of(
                    st.text(max_size=20).filter(lambda t: ":" not in t),
                    st.sampled_from(["raftoral_lab.samples", "json", "raftoral_lab.nope_xyz"])
                    .flatmap(
                        lambda module: st.text(alphabet=string.ascii_letters, max_size=10).map(
                            lambda attr: f"{module}:{attr}"
                        )
                    )
                    .filter(lambda spec: spec != "raftoral_lab.samples:app"),
                ),
                ("--app",),
            ),
            (
                "--events",
                garbage.filter(lambda t: t not in ("on", "sampled", "off")),
                ("--events",),
            ),
            ("--record", missing_files.map(lambda p: f"{p}/events.jsonl"), ("--record",)),
            ("--data-dir", st.just(str(A_FILE)), ("--data-dir",)),
            ("--execution-cluster-size", bad_counts, ("--execution-cluster-size",)),
            ("--management-voters", bad_counts, ("--management-voters",)),
        ],
    ),
    "status": (
        ["status", "--broker", CLOSED_BROKER],
        [*BROKER_FLAGS, ("--timeout", bad_seconds, ("--timeout",))],
    ),
    "run": (
        ["run", "ten_steps", "--version", "1", "--broker", CLOSED_BROKER],
        [
            *BROKER_FLAGS,
            ("--version", bad_counts, ("--version",)),
            ("--timeout", bad_seconds, ("--timeout",)),
            ("--input", st.sampled_from(["{", "[1,", "nope", "{'a': 1}", "\x00"]), ("--input",)),
            ("--workflow-id", st.just(""), ("--workflow-id",)),
        ],
    ),
    "broker": (
        ["broker", "--port", "0"],
        [("--port", bad_ports, ("--port",)), ("--host", bad_hosts, ("--host",))],
    ),
    "demo": (
        ["demo", "--broker", "memory", "--port", "0"],
        [
            ("--nodes", bad_counts, ("--nodes",)),
            ("--port", bad_ports, ("--port",)),
            ("--address", bad_hosts, ("--address",)),
            ("--tick", bad_seconds, ("--tick",)),
            ("--broker", bad_urls.filter(lambda t: t != "memory"), ("broker", "url")),
            ("--cluster", bad_clusters, ("cluster",)),
            ("--record", missing_files.map(lambda p: f"{p}/events.jsonl"), ("--record",)),
            ("--execution-cluster-size", bad_counts, ("--execution-cluster-size",)),
        ],
    ),
    "dashboard": (
        ["dashboard", "--broker", CLOSED_BROKER, "--port", "0"],
        [
            *BROKER_FLAGS,
            ("--port", bad_ports, ("--port",)),
            ("--address", bad_hosts, ("--address",)),
        ],
    ),
    "replay": (
        ["replay", str(A_FILE), "--port", "0"],
        [("--port", bad_ports, ("--port",)), ("--address", bad_hosts, ("--address",))],
    ),
    "chaos": (
        ["chaos", "--duration", "5", "--broker", CLOSED_BROKER],
        [
            ("--broker", bad_urls.filter(lambda t: t != "mosquitto"), ("broker",)),
            ("--duration", bad_seconds, ("--duration",)),
            (
                "--nodes",
                st.one_of(bad_counts, st.sampled_from(["1", "2", "8", "100"])),
                ("--nodes",),
            ),
            ("--rate", bad_seconds, ("--rate",)),
            ("--seed", garbage.filter(lambda t: not _is_whole(t)), ("--seed",)),
            ("--data-dir", st.just(str(A_FILE)), ("--data-dir",)),
        ],
    ),
    "bench core": (
        ["bench", "core", "--entries", "10", "--burst", "5", "--ticks", "5"],
        [(f, bad_counts, (f,)) for f in ("--entries", "--burst", "--ticks")],
    ),
    "bench commit": (
        ["bench", "commit", "--samples", "1", "--proposals", "1", "--rounds", "1"],
        [(f, bad_counts, (f,)) for f in ("--samples", "--proposals", "--in-flight", "--rounds")],
    ),
    "bench workflows": (
        ["bench", "workflows", "--samples", "1", "--workflows", "1"],
        [
            *[(f, bad_counts, (f,)) for f in ("--samples", "--workflows", "--in-flight")],
            ("--tick", bad_seconds, ("--tick",)),
        ],
    ),
    "bench events": (
        ["bench", "events", "--proposals", "1", "--rounds", "1"],
        [
            *[(f, bad_counts, (f,)) for f in ("--proposals", "--in-flight", "--rounds")],
            (
                "--broker",
                bad_urls.filter(lambda t: t not in ("memory", "mosquitto", "embedded")),
                ("--broker",),
            ),
        ],
    ),
    "bench scale": (
        ["bench", "scale", "--nodes", "5", "--workflows", "1"],
        [
            (
                "--nodes",
                st.one_of(garbage, st.integers(max_value=4).map(str), st.just("5,x")),
                ("--nodes",),
            ),
            *[(f, bad_counts, (f,)) for f in ("--workflows", "--in-flight")],
            ("--broker", garbage.filter(lambda t: t not in ("memory", "mosquitto")), ("--broker",)),
            ("--tick", bad_seconds, ("--tick",)),
        ],
    ),
    "bench dashboard": (
        ["bench", "dashboard", "--seconds", "1"],
        [
            *[(f, bad_counts, (f,)) for f in ("--nodes", "--entries", "--workflows", "--rate")],
            ("--seconds", bad_seconds, ("--seconds",)),
            ("--workflow-rate", bad_seconds, ("--workflow-rate",)),
        ],
    ),
}

FLAGS = [
    pytest.param(command, flag, values, words, id=f"{command} {flag}")
    for command, (_, flags) in CASES.items()
    for flag, values, words in flags
]


@pytest.mark.parametrize(("command", "flag", "values", "words"), FLAGS)
def test_a_bad_flag_value_exits_2_with_a_clear_message(
    command: str, flag: str, values: st.SearchStrategy[str], words: tuple[str, ...]
) -> None:
    base = CASES[command][0]

    @FAST
    @given(value=values)
    def check(value: str) -> None:
        data_dir = fresh_data_dir()
        extra = ["--data-dir", str(data_dir)] if command == "node" and flag != "--data-dir" else []
        # `--flag=value`, so a value that starts with a dash is a value, not another flag
        assert_refused([*base, *extra, f"{flag}={value}"], *words)
        assert not data_dir.exists(), f"{flag}={value!r} created {data_dir}"

    check()


def test_every_subcommand_and_flag_is_fuzzed() -> None:
    """A new command or flag must join CASES (flags that take no value, or any value, are
    the only ones left out)."""
    from raftoral_lab.cli.main import build_parser

    # flags that take a value, but any value is good (a name, a password, a token)
    no_bad_value = {"--username", "--password", "--token"}
    # bench commit's --broker takes mosquitto, embedded or any URL, checked when it runs
    no_bad_value_of = {("bench commit", "--broker")}
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    missing: list[str] = []
    for name, sub in commands.items():
        subs = [(name, sub)]
        if name == "bench":
            bench_choices = sub._subparsers._group_actions[0].choices  # type: ignore[union-attr]
            subs = [(f"bench {b}", p) for b, p in bench_choices.items()]
        for label, p in subs:
            fuzzed = {flag for flag, _, _ in CASES.get(label, ([], []))[1]}
            for action in p._actions:
                if action.nargs == 0:  # switches (store_true, --x/--no-x, --help) take no value
                    continue
                for option in action.option_strings:
                    if option in fuzzed or option in no_bad_value:
                        continue
                    if (label, option) not in no_bad_value_of:
                        missing.append(f"{label} {option}")
            if label not in CASES:
                missing.append(label)
    assert not missing, f"not fuzzed: {missing}"


def test_the_tripwire_catches_accepted_input() -> None:
    """The fuzz test can fail: valid input does reach the work (and trips)."""
    for argv in (
        ["status", "--broker", CLOSED_BROKER],
        ["broker", "--port", "0"],
        ["sim", "--seeds", "1"],
        ["bench", "core"],
        ["chaos", "--duration", "5"],
    ):
        with pytest.raises(pytest.fail.Exception, match="started work"):
            run_cli(argv)


def test_a_refused_command_leaves_a_node_data_directory_as_it_was() -> None:
    data_dir = SCRATCH / "a-node"
    data_dir.mkdir()
    with SQLiteStorage(data_dir / "raft.db") as storage:
        storage.bootstrap([1, 2, 3])
    (data_dir / "node.json").write_text(json.dumps({"node_id": 1, "cluster": "lab"}) + "\n")

    def fingerprint() -> dict[str, tuple[str, float]]:
        return {
            p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime)
            for p in sorted(data_dir.iterdir())
        }

    before = fingerprint()
    base = ["node", "--data-dir", str(data_dir)]
    for bad in (
        ["--broker", "bad"],
        ["--broker", CLOSED_BROKER, "--cluster", "a/b"],
        ["--broker", CLOSED_BROKER, "--app", "nope:app"],
        ["--broker", CLOSED_BROKER, "--bootstrap", "--voters", "7"],
        ["--broker", CLOSED_BROKER, "--secret-file", str(MISSING)],
        ["--broker", CLOSED_BROKER, "--record", str(MISSING / "x.jsonl")],
    ):
        assert_refused([*base, *bad], *bad[-1:], "broker", "cluster", "app", "voters", "secret")
    assert fingerprint() == before


@FAST
@given(path=st.one_of(missing_files, st.just(str(SCRATCH)), st.just("")))
def test_replay_of_a_missing_file_or_a_directory_is_refused(path: str) -> None:
    assert_refused(["replay", path], "no such file")


def test_replay_of_a_file_that_is_no_recording_is_refused() -> None:
    assert_refused(["replay", str(A_FILE)], "recording")


def test_a_chaos_data_dir_that_is_not_empty_is_refused() -> None:
    assert_refused(["chaos", "--data-dir", str(SCRATCH)], "not empty")


# --- the API ------------------------------------------------------------------------------------

not_an_int = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=5),
    st.floats(allow_nan=True).filter(lambda f: math.isnan(f) or not f.is_integer()),
    st.lists(st.integers(), max_size=2),
)


def assert_raises_raftoral(call: Any, *words: str) -> RaftoralError:
    try:
        call()
    except RaftoralError as error:
        message = str(error)
        assert any(w in message for w in words), f"{message!r} names none of {words}"
        return error
    except Exception as error:  # pragma: no cover - the failure this test looks for
        pytest.fail(f"{type(error).__name__} instead of a RaftoralError: {error}")
    pytest.fail("no error")


@given(
    field=st.sampled_from(
        ["election_timeout", "heartbeat_interval", "max_entries_per_message", "max_inflight"]
    ),
    value=st.one_of(not_an_int, st.integers(max_value=0)),
)
def test_raft_config_refuses_what_is_not_a_positive_whole_number(field: str, value: Any) -> None:
    assert_raises_raftoral(lambda: RaftConfig(**{field: value}), field, "election_timeout")


@given(
    field=st.sampled_from(["pre_vote", "check_quorum", "trace"]),
    value=st.one_of(st.none(), st.integers(), st.text(max_size=5), st.floats()),
)
def test_raft_config_switches_are_true_or_false(field: str, value: Any) -> None:
    assert_raises_raftoral(lambda: RaftConfig(**{field: value}), field)


@given(nodes=st.one_of(not_an_int, st.integers(max_value=0), st.integers(min_value=1001)))
def test_simulation_refuses_a_bad_cluster_size(nodes: Any) -> None:
    assert_raises_raftoral(lambda: Simulation(nodes=nodes), "node")


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"seed": "7"}, ["seed"]),
        ({"seed": None}, ["seed"]),
        ({"seed": 1.5}, ["seed"]),
        ({"config": "fast"}, ["RaftConfig"]),
        ({"group": -1}, ["group"]),
        ({"group": "0"}, ["group"]),
        ({"compact_every": "3"}, ["compact_every"]),
        ({"compact_every": 0}, ["compact_every"]),
        ({"machine_factory": 3}, ["machine_factory"]),
    ],
)
def test_simulation_refuses_bad_arguments(kwargs: dict[str, Any], words: list[str]) -> None:
    assert_raises_raftoral(lambda: Simulation(nodes=3, **kwargs), *words)


async def _one(ctx: WorkflowContext, value: int) -> int:
    return value


def _not_async(ctx: WorkflowContext, value: int) -> int:
    return value


@given(
    name=st.one_of(st.just(""), st.none(), st.integers(), st.lists(st.text(), max_size=1)),
)
def test_workflow_registration_refuses_a_bad_name(name: Any) -> None:
    assert_raises_raftoral(lambda: WorkflowApp().register(name, 1, _one), "name")


@given(version=st.one_of(not_an_int, st.integers(max_value=0)))
def test_workflow_registration_refuses_a_bad_version(version: Any) -> None:
    assert_raises_raftoral(lambda: WorkflowApp().register("w", version, _one), "version")


@pytest.mark.parametrize("fn", [None, 3, "f", _not_async, lambda: None])
def test_workflow_registration_refuses_what_is_not_an_async_function(fn: Any) -> None:
    assert_raises_raftoral(lambda: WorkflowApp().register("w", 1, fn), "async def")


def test_workflow_registration_twice_and_unknown_lookups_say_so() -> None:
    app = WorkflowApp()
    app.register("w", 1, _one)
    assert_raises_raftoral(lambda: app.register("w", 1, _one), "registered already")
    assert_raises_raftoral(lambda: app.get("w", 2), "not registered")
    assert_raises_raftoral(lambda: app.get("w", "1"), "int version")


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"nodes": 0}, ["nodes"]),
        ({"nodes": -3}, ["nodes"]),
        ({"tick_seconds": 0}, ["tick_seconds"]),
        ({"tick_seconds": -0.5}, ["tick_seconds"]),
        ({"secret": "short"}, ["secret"]),
        ({"nodes": "3"}, ["nodes"]),
        ({"nodes": None}, ["nodes"]),
        ({"nodes": 2.5}, ["nodes"]),
        ({"nodes": True}, ["nodes"]),
        ({"tick_seconds": "x"}, ["tick"]),
        ({"tick_seconds": math.nan}, ["tick"]),
        ({"tick_seconds": math.inf}, ["tick"]),
        ({"config": "fast"}, ["config"]),
        ({"compact_every": 0}, ["compact"]),
        ({"retain_finished": -1}, ["retain"]),
        ({"app": "x"}, ["app"]),
        ({"state_machine": 3}, ["state_machine"]),
        ({"data_dir": 3}, ["data_dir"]),
        ({"record": str(MISSING / "x.jsonl")}, ["record"]),
    ],
)
def test_lab_refuses_bad_arguments_when_it_is_made(
    kwargs: dict[str, Any], words: list[str]
) -> None:
    assert_raises_raftoral(lambda: Lab(broker="memory", **kwargs), *words)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"broker": "http://127.0.0.1:1883"}, ["mqtt://"]),
        ({"broker": "mqtt://127.0.0.1:0"}, ["port"]),
        ({"broker": "memory", "cluster": "a/b"}, ["cluster"]),
        ({"broker": "memory", "cluster": ""}, ["cluster"]),
        ({"broker": "memory", "sample_messages": 2.0}, ["sample_messages"]),
    ],
)
async def test_lab_refuses_a_bad_broker_or_cluster_before_any_node_runs(
    kwargs: dict[str, Any], words: list[str]
) -> None:
    with pytest.MonkeyPatch.context() as patch:  # the real start, not the tripwire
        patch.setattr(raftoral_lab.lab.Lab, "start", _REAL_LAB_START)
        patch.setattr(raftoral_lab.transport.mqtt.MqttTransport, "start", _REAL_MQTT_START)
        lab = Lab(**kwargs)
        try:
            with pytest.raises(RaftoralError) as raised:
                await lab.start()
            assert any(w in str(raised.value) for w in words), raised.value
            assert not any(node.running for node in lab.nodes.values())
        finally:
            await lab.stop()


_REAL_LAB_START = raftoral_lab.lab.Lab.start
_REAL_MQTT_START = raftoral_lab.transport.mqtt.MqttTransport.start


def _faults_of(lab: Lab) -> dict[int, tuple[frozenset[int], float, Any]]:
    return {
        n: (node.transport.faults.blocked, node.transport.faults.drop_rate,
            node.transport.faults.delay)
        for n, node in lab.nodes.items()
    }  # fmt: skip


BAD_CONTROLS: list[Any] = [
    ("partition", ({9},), ["unknown node"]),
    ("partition", ({1}, {1, 2}), ["two partition sides"]),
    ("partition", ({"1"},), ["node ids are ints"]),
    ("partition", ({1.5},), ["node ids are ints"]),
    ("set_drop_rate", (-0.1,), ["drop"]),
    ("set_drop_rate", (1.5,), ["drop"]),
    ("set_drop_rate", (math.nan,), ["drop"]),
    ("set_drop_rate", ("x",), ["drop"]),
    ("set_drop_rate", (None,), ["drop"]),
    ("set_delay", (-1,), ["delay"]),
    ("set_delay", (0.5, 0.1), ["delay", "low", "high"]),
    ("set_delay", (math.nan,), ["delay"]),
    ("set_delay", (1e9,), ["delay", "seconds"]),
    ("set_delay", ("x",), ["delay"]),
    ("kill", (99,), ["99"]),
    ("kill", (0,), ["0"]),
    ("kill", ("1",), ["1"]),
    ("kill", (None,), ["None"]),
    ("restart", (99,), ["99"]),
    ("restart", (1,), ["running"]),
]


def _commands(lab: Lab) -> dict[int, list[bytes]]:
    return {
        n: list(node.group().state_machine.commands)  # type: ignore[attr-defined]
        for n, node in lab.nodes.items()
    }


async def _applied_everywhere(lab: Lab, count: int) -> dict[int, list[bytes]]:
    """Every node's commands once each node applied `count` of them (a bounded poll)."""
    for _ in range(500):
        seen = _commands(lab)
        if all(len(c) >= count for c in seen.values()):
            return seen
        await asyncio.sleep(0.02)
    pytest.fail(f"not every node applied {count} commands: {_commands(lab)}")


async def test_lab_controls_refuse_bad_values_and_change_nothing() -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(raftoral_lab.lab.Lab, "start", _REAL_LAB_START)
        async with Lab(nodes=3, broker="memory", tick_seconds=0.02) as lab:
            await lab.wait_for_leader()
            before = [f"before {i}".encode() for i in range(5)]
            for command in before:
                await lab.propose(command)
            committed = await _applied_everywhere(lab, len(before))
            faults = _faults_of(lab)
            running = {n for n, node in lab.nodes.items() if node.running}
            for name, args, words in BAD_CONTROLS:
                error: RaftoralError | None = None
                try:
                    await getattr(lab, name)(*args)
                except RaftoralError as raised:
                    error = raised
                except Exception as other:
                    pytest.fail(f"lab.{name}{args!r}: {type(other).__name__}: {other}")
                assert error is not None, f"lab.{name}{args!r} did not refuse"
                assert any(w in str(error) for w in words), f"lab.{name}{args!r}: {error}"
                assert _faults_of(lab) == faults, f"lab.{name}{args!r} changed the faults"
                assert {n for n, node in lab.nodes.items() if node.running} == running
            assert _commands(lab) == committed  # committed state untouched
            await lab.propose(b"after")  # and the cluster still commits
            after = await _applied_everywhere(lab, len(before) + 1)
            assert all(c == [*before, b"after"] for c in after.values()), after


@pytest.mark.parametrize("sides", [(3,), (None,)])
async def test_lab_partition_refuses_sides_that_are_not_sets_of_node_ids(sides: Any) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(raftoral_lab.lab.Lab, "start", _REAL_LAB_START)
        async with Lab(nodes=3, broker="memory", tick_seconds=0.02) as lab:
            with pytest.raises(RaftoralError, match="node"):
                await lab.partition(*sides)


def test_workflow_lookup_with_an_unhashable_name_says_what_is_wrong() -> None:
    assert_raises_raftoral(lambda: WorkflowApp().get(["w"], 1), "name")
