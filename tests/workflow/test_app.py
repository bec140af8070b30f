"""The registry: (name, version) to typed async functions, validated where input enters."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from raftoral_lab.errors import (
    InvalidWorkflowInput,
    UnknownWorkflow,
    WorkflowDefinitionError,
)
from raftoral_lab.workflow import WorkflowApp, WorkflowContext


class Order(BaseModel):
    item: str
    quantity: int = 1


class Receipt(BaseModel):
    status: str


def make_app() -> WorkflowApp:
    app = WorkflowApp()

    @app.workflow("order", version=1)
    async def order_v1(ctx: WorkflowContext, order: Order) -> Receipt:
        return Receipt(status="ok")

    @app.workflow("order", version=2)
    async def order_v2(ctx: WorkflowContext, order: Order) -> Receipt:
        return Receipt(status="ok")

    @app.workflow("ping")
    async def ping(ctx: WorkflowContext) -> str:
        return "pong"

    @app.workflow("untyped")
    async def untyped(ctx, value):  # type: ignore[no-untyped-def]
        return value

    return app


def test_types_come_from_the_annotations() -> None:
    app = make_app()
    assert app.pairs() == [("order", 1), ("order", 2), ("ping", 1), ("untyped", 1)]
    order = app.get("order", 1)
    assert order.input_type is Order and order.output_type is Receipt
    assert app.get("ping", 1).takes_input is False
    assert app.get("untyped", 1).input_type is Any


def test_input_is_validated_and_turned_into_json() -> None:
    definition = make_app().get("order", 1)
    assert definition.input_to_json(Order(item="x")) == {"item": "x", "quantity": 1}
    assert definition.input_to_json({"item": "x", "quantity": 3}) == {"item": "x", "quantity": 3}
    with pytest.raises(InvalidWorkflowInput, match=r"order.*version 1.*item: Field required"):
        definition.input_to_json({"quantity": 3})
    with pytest.raises(InvalidWorkflowInput, match="takes no input"):
        make_app().get("ping", 1).input_to_json(5)
    with pytest.raises(InvalidWorkflowInput, match="not JSON"):
        make_app().get("untyped", 1).input_to_json({1, 2})
    assert definition.output_from_json({"status": "ok"}) == Receipt(status="ok")


def test_unknown_pairs_name_what_is_registered() -> None:
    with pytest.raises(UnknownWorkflow, match=r"'order' version 3 .*'order' v1, 'order' v2"):
        make_app().get("order", 3)


def test_bad_definitions_are_refused_with_a_reason() -> None:
    app = make_app()
    with pytest.raises(WorkflowDefinitionError, match="registered already"):
        app.register("ping", 1, app.get("ping", 1).fn)

    def not_async(ctx: WorkflowContext) -> None:
        return None

    with pytest.raises(WorkflowDefinitionError, match="async def"):
        app.register("sync", 1, not_async)  # type: ignore[arg-type]

    async def three(ctx: WorkflowContext, a: int, b: int) -> None:
        return None

    with pytest.raises(WorkflowDefinitionError, match=r"\(ctx\) or \(ctx, input\)"):
        app.register("three", 1, three)
    with pytest.raises(WorkflowDefinitionError, match="version must be an int >= 1"):
        app.register("zero", 0, three)

    class Local(BaseModel):
        x: int

    async def local(ctx: WorkflowContext, value: Local) -> None:  # a string annotation here
        return None

    with pytest.raises(WorkflowDefinitionError, match="input_type= and output_type="):
        app.register("local", 1, local)
    app.register("local", 1, local, input_type=Local, output_type=None)
    assert app.get("local", 1).input_to_json({"x": 1}) == {"x": 1}
