"""`raftoral-lab run NAME --version V --input JSON`: start a workflow on a cluster, as a client.

The client finds the nodes on `presence/+` and sends `workflow.start` to one of them (any node
works: it forwards the start to the leader), then `workflow.result`, and prints the result as
JSON (with `--no-wait`, the workflow id). The workflow id is chosen here when not given, so a
start that is retried (a node died, the leader changed) is the same start: it never runs twice.

Exit status: 0 with the result, 1 when the workflow failed or was cancelled (the remote error
type and message on stderr), 2 for a usage or cluster error (bad JSON, no cluster, unknown
workflow), 3 when the result did not come within `--timeout`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from typing import Any

from raftoral_lab.cli.common import add_broker_args, mqtt_transport, positive_float, positive_int
from raftoral_lab.errors import ConfigError, NodeError, WorkflowError
from raftoral_lab.node.client import ClusterClient, client_id

RETRYABLE = frozenset(
    {
        "WorkflowAborted",
        "ProposalTimeout",
        "NodeError",
        "WorkflowTimeout",
        "TransportError",
        "retry",
    }
)
"""Remote errors that say "ask again" (a node starting or stopping, a leader change), not
"you are wrong"."""

RESULT_SLICE = 5.0
"""Seconds the client waits for one `workflow.result` answer before it asks again (maybe
another node: the one asked may have died). The request sends `wait`, half a second less
than the slice (or the time left): the node holds the request at most that long, then
answers WorkflowTimeout for a run still going, so the answer comes before the client gives
up, and the client asks again."""


class RemoteWorkflowError(WorkflowError):
    """A node answered a workflow request with an error that retrying does not fix."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "run", help="start a workflow on a cluster and print its result (as a client)"
    )
    p.add_argument("name", help="the workflow's registered name")
    p.add_argument("--version", type=positive_int, required=True, help="the workflow version")
    p.add_argument("--input", default="null", help='the input as JSON, e.g. \'{"item": "book"}\'')
    add_broker_args(p)
    p.add_argument("--workflow-id", help="the workflow id (default: a new one)")
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=60.0,
        help="seconds to wait for the start and the result (default 60)",
    )
    p.add_argument(
        "--no-wait", action="store_true", help="print the workflow id once it has started"
    )
    p.set_defaults(run=run)


def parse_input(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise ConfigError(f"--input is not JSON ({error}): {text[:200]!r}") from None


def run(args: argparse.Namespace) -> int:
    value = parse_input(args.input)
    if args.workflow_id is not None and not args.workflow_id:
        raise ConfigError("--workflow-id must not be empty")
    return asyncio.run(_main(args, value))


async def _main(args: argparse.Namespace, value: Any) -> int:
    workflow_id = args.workflow_id or uuid.uuid4().hex
    deadline = time.monotonic() + args.timeout
    async with ClusterClient(mqtt_transport(args, client_id(), presence=False)) as client:
        try:
            await client.discover(timeout=min(args.timeout, 10.0), settle=0.1)
        except NodeError as error:
            raise NodeError(
                f"no cluster {args.cluster!r} found on {args.broker}: {error}"
            ) from None
        try:
            started, node = await workflow_call(
                client,
                "workflow.start",
                deadline=deadline,
                name=args.name,
                version=args.version,
                input=value,
                workflow_id=workflow_id,
            )
        except TimeoutError as error:
            raise NodeError(
                f"could not start workflow {workflow_id} within {args.timeout:g} s: {error}"
            ) from None
        if args.no_wait:
            print(started["workflow_id"], flush=True)
            return 0
        try:
            outcome = await workflow_result(client, workflow_id, deadline=deadline, prefer=node)
        except TimeoutError:
            print(
                f"raftoral-lab run: workflow {workflow_id} did not end within "
                f"{args.timeout:g} s; it keeps running on the cluster",
                file=sys.stderr,
            )
            return 3
    status = outcome.get("status")
    if status == "completed":
        print(json.dumps(outcome.get("result")), flush=True)
        return 0
    failure = outcome.get("error") or {}
    kind = failure.get("type", status) if isinstance(failure, dict) else status
    message = failure.get("message", "") if isinstance(failure, dict) else ""
    print(
        f"raftoral-lab run: workflow {workflow_id} {status}: {kind}: {message}",
        file=sys.stderr,
    )
    return 1


async def workflow_call(
    client: ClusterClient,
    op: str,
    /,
    *,
    deadline: float,
    prefer: int | None = None,
    rpc_timeout: float = 5.0,
    **fields: Any,
) -> tuple[dict[str, Any], int]:
    """(answer, node) of a workflow op: asked of `prefer` or any live node, again elsewhere
    when a node does not answer or says to retry, and at the leader a node names.
    RemoteWorkflowError for an error answer; TimeoutError at `deadline`."""
    target = prefer
    last = "no answer"
    while (remaining := deadline - time.monotonic()) > 0:
        nodes = client.alive() or await client.discover(timeout=remaining, settle=0.0)
        node = target if target in nodes else random.choice(nodes)
        try:
            reply = await client.call(node, op, timeout=min(remaining, rpc_timeout), **fields)
        except TimeoutError:
            target, last = None, f"node {node} did not answer"
            continue
        if not reply.get("ok"):
            error = reply.get("error")
            if error == "not_leader":
                hint = reply.get("leader")
                target = hint if isinstance(hint, int) else None
            elif error != "retry":
                raise RemoteWorkflowError(str(error), str(reply.get("message", "")))
            last = f"node {node}: {error}"
            await asyncio.sleep(0.05)
            continue
        answer = reply.get("result")
        if not isinstance(answer, dict):
            raise NodeError(f"node {node} answered {op} with {answer!r}")
        error = answer.get("error")
        if not isinstance(error, str):  # None, or the committed error of a failed workflow
            return answer, node
        if error in RETRYABLE:
            target, last = None, f"node {node}: {error}: {answer.get('message')}"
            await asyncio.sleep(0.05)
            continue
        raise RemoteWorkflowError(str(error), str(answer.get("message", "")))
    raise TimeoutError(f"{op} not answered in time ({last})")


async def workflow_result(
    client: ClusterClient,
    workflow_id: str,
    *,
    deadline: float,
    prefer: int | None = None,
) -> dict[str, Any]:
    """The committed outcome `{status, result}` or `{status, error}` of `workflow_id`, asked
    in slices of RESULT_SLICE seconds (a node that dies meanwhile is replaced by another).
    A node that has not applied the start yet says WorkflowNotFound: asked again until the
    deadline. TimeoutError at `deadline`."""
    target = prefer
    while (remaining := deadline - time.monotonic()) > 0:
        wait = min(remaining, RESULT_SLICE)
        try:
            answer, target = await workflow_call(
                client,
                "workflow.result",
                deadline=deadline,
                prefer=target,
                rpc_timeout=wait,
                workflow_id=workflow_id,
                wait=max(wait - 0.5, 0.1),  # answer (still running) before the client gives up
            )
        except RemoteWorkflowError as error:
            if error.error_type == "WorkflowTimeout":
                continue  # still running when the node's `wait` ran out: ask again
            if error.error_type != "WorkflowNotFound":
                raise
            target = None
            await asyncio.sleep(0.05)
            continue
        return answer
    raise TimeoutError(f"workflow {workflow_id} did not end in time")
