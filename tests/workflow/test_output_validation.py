"""A workflow's output is checked on the owner before it proposes the end: a value that does not
fit the declared output type commits as a failure (InvalidWorkflowOutput), the same on every
node, instead of a "completed" result that no node can read back."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from raftoral_lab.errors import InvalidWorkflowOutput, WorkflowFailed
from raftoral_lab.workflow import WorkflowApp, WorkflowContext, WorkflowStatus

from .conftest import ClusterFactory
from .support import TIMEOUT


class Receipt(BaseModel):
    status: str
    item: str


def bad_outputs_app() -> WorkflowApp:
    app = WorkflowApp()

    @app.workflow("count")
    async def count(ctx: WorkflowContext, value: Any) -> int:
        return value  # type: ignore[no-any-return]

    @app.workflow("receipt")
    async def receipt(ctx: WorkflowContext, value: Any) -> Receipt:
        return value  # type: ignore[no-any-return]

    @app.workflow("anything")
    async def anything(ctx: WorkflowContext, as_set: bool) -> Any:
        return {1, 2} if as_set else (1, "a")

    return app


async def failures_on_every_node(
    cluster: Any, name: str, value: object, workflow_id: str
) -> list[WorkflowFailed]:
    await cluster.runtimes[2].start_workflow(name, 1, value, workflow_id=workflow_id)
    failures = []
    for node in (1, 2, 3):
        with pytest.raises(WorkflowFailed) as caught:
            await cluster.run(node, workflow_id).result(TIMEOUT)
        failures.append(caught.value)
        info = cluster.runtimes[node].get_workflow(workflow_id)
        assert info.status is WorkflowStatus.FAILED, f"node {node}: {info.status}"
    return failures


async def test_a_string_from_an_int_workflow_fails_the_same_on_every_node(
    make_cluster: ClusterFactory,
) -> None:
    cluster = await make_cluster(3, bad_outputs_app())
    failures = await failures_on_every_node(cluster, "count", "abc", "bad-int")
    assert {(f.error_type, f.message) for f in failures} == {
        (failures[0].error_type, failures[0].message)
    }, "every node raises the committed error"
    assert failures[0].error_type == InvalidWorkflowOutput.__name__
    assert "'count' version 1" in failures[0].message
    assert "valid integer" in failures[0].message
    assert "InvalidWorkflowOutput" in str(failures[0])


async def test_a_bad_dict_from_a_model_workflow_names_the_wrong_fields(
    make_cluster: ClusterFactory,
) -> None:
    cluster = await make_cluster(3, bad_outputs_app())
    failures = await failures_on_every_node(cluster, "receipt", {"status": 7}, "bad-model")
    assert len({(f.error_type, f.message) for f in failures}) == 1
    message = failures[0].message
    assert failures[0].error_type == "InvalidWorkflowOutput"
    assert "2 problem(s)" in message, message
    assert "status: Input should be a valid string" in message, message
    assert "item: Field required" in message, message


async def test_an_untyped_output_that_is_not_json_fails(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(3, bad_outputs_app())
    failures = await failures_on_every_node(cluster, "anything", True, "a-set")
    assert len({(f.error_type, f.message) for f in failures}) == 1
    assert failures[0].error_type == "InvalidWorkflowOutput"
    assert "not JSON data" in failures[0].message


async def test_good_outputs_complete_unchanged(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(3, bad_outputs_app())
    starts = {
        "int": ("count", 42, 42),
        "model": ("receipt", Receipt(status="ok", item="x"), Receipt(status="ok", item="x")),
        "dict": ("receipt", {"status": "ok", "item": "y"}, Receipt(status="ok", item="y")),
        "tuple": ("anything", False, [1, "a"]),
    }
    for workflow_id, (name, value, _) in starts.items():
        await cluster.runtimes[1].start_workflow(name, 1, value, workflow_id=workflow_id)
    for workflow_id, (_, _, expected) in starts.items():
        for node in (1, 2, 3):
            assert await cluster.run(node, workflow_id).result(TIMEOUT) == expected, (
                f"{workflow_id} on node {node}"
            )
            info = cluster.runtimes[node].get_workflow(workflow_id)
            assert info.status is WorkflowStatus.COMPLETED
