"""The Raftoral layer: durable workflows replicated through Raft (DESIGN.md section 4).

```python
from raftoral_lab.workflow import WorkflowApp, WorkflowContext, WorkflowRuntime
from raftoral_lab.workflow import WorkflowStateMachine

app = WorkflowApp()

@app.workflow("process_order", version=1)
async def process_order(ctx: WorkflowContext, order: Order) -> Receipt:
    status = await ctx.checkpoint("status", "processing")
    ok = await ctx.checkpoint_compute("inventory", lambda: check_inventory(order.item))
    await status.set("confirmed" if ok else "out_of_stock")
    return Receipt(status=status.value)

node = Node(1, transport, voters=[1, 2, 3], state_machine=WorkflowStateMachine())
runtime = WorkflowRuntime(node, app)
await node.start(); await runtime.start()
receipt = await (await runtime.start_workflow("process_order", 1, Order(item="x"))).result(30)
```
"""

from raftoral_lab.workflow.app import WorkflowApp, WorkflowDefinition
from raftoral_lab.workflow.commands import ErrorInfo
from raftoral_lab.workflow.context import ReplicatedVar, Retry, WorkflowContext
from raftoral_lab.workflow.runtime import Outcome, WorkflowRun, WorkflowRuntime
from raftoral_lab.workflow.state_machine import (
    CommittedCheckpoint,
    WorkflowInfo,
    WorkflowStateMachine,
    WorkflowStatus,
)

__all__ = [
    "CommittedCheckpoint",
    "ErrorInfo",
    "Outcome",
    "ReplicatedVar",
    "Retry",
    "WorkflowApp",
    "WorkflowContext",
    "WorkflowDefinition",
    "WorkflowInfo",
    "WorkflowRun",
    "WorkflowRuntime",
    "WorkflowStateMachine",
    "WorkflowStatus",
]
