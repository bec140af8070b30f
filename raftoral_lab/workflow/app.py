"""The registry of workflow functions: `(name, version)` to an async function with typed I/O.

```python
app = WorkflowApp()

@app.workflow("process_order", version=1)
async def process_order(ctx: WorkflowContext, order: Order) -> Receipt:
    ...
```

The input and output types come from the function's annotations (or `input_type=` /
`output_type=`): pydantic models, dataclasses or plain JSON types, anything a pydantic
`TypeAdapter` takes. An input is validated where it enters the cluster (`start_workflow`), so a
bad input fails there with a clear error and nothing is started. The output is validated and
turned into JSON on the owner before it proposes the end (a wrong one ends the run as failed
with InvalidWorkflowOutput), and validated back into its type by `run.result()`.
"""

from __future__ import annotations

import functools
import inspect
import json
import typing
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from raftoral_lab.errors import (
    InvalidWorkflowInput,
    InvalidWorkflowOutput,
    UnknownWorkflow,
    WorkflowDefinitionError,
    WorkflowError,
)

if TYPE_CHECKING:
    from raftoral_lab.workflow.context import WorkflowContext

WorkflowFunction = Callable[..., Awaitable[Any]]
"""`async def f(ctx: WorkflowContext, input: I) -> O`, or `async def f(ctx) -> O`."""

F = TypeVar("F", bound=WorkflowFunction)

_NO_ANNOTATION = inspect.Parameter.empty


@functools.lru_cache(maxsize=256)
def adapter_for(tp: Any) -> TypeAdapter[Any]:
    """A cached pydantic TypeAdapter (building one costs far more than using it)."""
    return TypeAdapter(tp)


def to_json(value: object, tp: Any = None) -> Any:
    """`value` as plain JSON data (dicts, lists, str, numbers, bool, None).

    With a type, pydantic dumps it (models, dataclasses, datetimes...); without, a pydantic
    model is dumped by its own class and anything else must already be JSON. Raises TypeError
    or ValueError when it cannot be represented."""
    if tp is None and hasattr(value, "__pydantic_serializer__"):
        tp = type(value)
    if tp is not None and tp is not Any:
        return adapter_for(tp).dump_python(value, mode="json")
    # a round trip, so that every node sees exactly what the log carries (tuples become lists)
    return json.loads(json.dumps(value, allow_nan=False))


def from_json(data: Any, tp: Any = None) -> Any:
    """JSON data back into `tp` (unchanged without a type)."""
    if tp is None or tp is Any:
        return data
    return adapter_for(tp).validate_python(data)


@dataclass(frozen=True, slots=True)
class WorkflowDefinition:
    """One registered workflow version."""

    name: str
    version: int
    fn: WorkflowFunction
    input_type: Any
    """The input's type (`Any` without an annotation); None when the function takes no input."""
    output_type: Any

    @property
    def takes_input(self) -> bool:
        return self.input_type is not None

    def input_to_json(self, value: object) -> Any:
        """Validate a caller's input and turn it into JSON; InvalidWorkflowInput otherwise."""
        where = f"workflow {self.name!r} version {self.version}"
        if not self.takes_input:
            if value is not None:
                raise InvalidWorkflowInput(f"{where} takes no input, got {value!r}")
            return None
        return _checked_json(value, self.input_type, InvalidWorkflowInput, "input", where)

    def input_from_json(self, data: Any) -> Any:
        return from_json(data, self.input_type)

    def output_to_json(self, value: object) -> Any:
        """Validate what the function returned and turn it into JSON; InvalidWorkflowOutput
        otherwise. The owner calls it before proposing the end, so a wrong value becomes a
        committed failure instead of a result that no node can read back."""
        where = f"workflow {self.name!r} version {self.version}"
        return _checked_json(value, self.output_type, InvalidWorkflowOutput, "output", where)

    def output_from_json(self, data: Any) -> Any:
        return from_json(data, self.output_type)

    async def call(self, ctx: WorkflowContext, value: Any) -> Any:
        if self.takes_input:
            return await self.fn(ctx, value)
        return await self.fn(ctx)


class WorkflowApp:
    """The workflows one program can run; every node of a cluster registers its own app.

    Register the same code on every node. A node without a (name, version) pair never runs
    it and is never its owner; run v1 and v2 side by side while old runs finish.
    """

    def __init__(self) -> None:
        self._definitions: dict[tuple[str, int], WorkflowDefinition] = {}

    def workflow(
        self,
        name: str,
        version: int = 1,
        *,
        input_type: Any = _NO_ANNOTATION,
        output_type: Any = _NO_ANNOTATION,
    ) -> Callable[[F], F]:
        """Decorator: register `async def f(ctx, input) -> output` as (name, version)."""

        def register(fn: F) -> F:
            self.register(name, version, fn, input_type=input_type, output_type=output_type)
            return fn

        return register

    def register(
        self,
        name: str,
        version: int,
        fn: WorkflowFunction,
        *,
        input_type: Any = _NO_ANNOTATION,
        output_type: Any = _NO_ANNOTATION,
    ) -> WorkflowDefinition:
        if not isinstance(name, str) or not name:
            raise WorkflowDefinitionError(
                f"a workflow name must be a non-empty string, got {name!r}"
            )
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise WorkflowDefinitionError(
                f"workflow {name!r}: version must be an int >= 1, got {version!r}"
            )
        if (name, version) in self._definitions:
            raise WorkflowDefinitionError(
                f"workflow {name!r} version {version} is registered already; "
                "register a changed function as a new version"
            )
        if not inspect.iscoroutinefunction(fn):
            raise WorkflowDefinitionError(
                f"workflow {name!r} v{version}: {fn!r} must be an `async def` function"
            )
        params = list(inspect.signature(fn).parameters.values())
        positional = [
            p
            for p in params
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
        if len(positional) not in (1, 2):
            raise WorkflowDefinitionError(
                f"workflow {name!r} v{version}: the function must take (ctx) or (ctx, input); "
                f"it takes {len(positional)} required positional parameters"
            )
        needs_hints = (input_type is _NO_ANNOTATION and len(positional) == 2) or (
            output_type is _NO_ANNOTATION
        )
        hints = _hints(fn, name, version) if needs_hints else {}
        if input_type is _NO_ANNOTATION:
            input_type = hints.get(positional[1].name, Any) if len(positional) == 2 else None
        elif len(positional) == 1:
            raise WorkflowDefinitionError(
                f"workflow {name!r} v{version}: input_type given, but the function takes no input"
            )
        if output_type is _NO_ANNOTATION:
            output_type = hints.get("return", Any)
        if output_type is None or output_type is type(None):
            output_type = type(None)
        for what, tp in (("input", input_type), ("output", output_type)):
            if tp is None or tp is Any:
                continue
            try:
                adapter_for(tp)
            except Exception as error:  # pydantic raises several kinds for unusable types
                raise WorkflowDefinitionError(
                    f"workflow {name!r} v{version}: the {what} type {tp!r} cannot be turned into "
                    f"JSON ({error}); use a pydantic model, a dataclass or JSON types"
                ) from None
        definition = WorkflowDefinition(name, version, fn, input_type, output_type)
        self._definitions[(name, version)] = definition
        return definition

    def get(self, name: str, version: int) -> WorkflowDefinition:
        """The definition, or UnknownWorkflow listing what is registered."""
        if not isinstance(name, str) or isinstance(version, bool) or not isinstance(version, int):
            raise WorkflowError(
                f"a workflow is named by a str and an int version, got name={name!r}, "
                f"version={version!r}"
            )
        try:
            return self._definitions[(name, version)]
        except KeyError:
            raise UnknownWorkflow(name, version, list(self._definitions)) from None

    def input_json(self, name: str, version: int, value: object) -> Any:
        """`value` as the log carries a start's input: checked against the workflow's input
        type when (name, version) is registered here, else only required to be JSON data
        (another node runs it)."""
        if (name, version) in self:
            return self.get(name, version).input_to_json(value)
        try:
            return to_json(value)
        except (TypeError, ValueError) as error:
            raise InvalidWorkflowInput(f"input is not JSON data: {error}") from None

    def pairs(self) -> list[tuple[str, int]]:
        """The registered (name, version) pairs, sorted."""
        return sorted(self._definitions)

    def __contains__(self, pair: object) -> bool:
        return pair in self._definitions

    def __iter__(self) -> Iterator[WorkflowDefinition]:
        return iter(self._definitions.values())

    def __len__(self) -> int:
        return len(self._definitions)


def _problems(error: ValidationError, what: str) -> str:
    """pydantic's errors in one line: where (`what` for the top level) and what is wrong."""
    return f"{error.error_count()} problem(s): " + "; ".join(
        f"{'.'.join(map(str, e['loc'])) or what}: {e['msg']}"
        for e in error.errors(include_url=False)
    )


def _hints(fn: WorkflowFunction, name: str, version: int) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception as error:  # NameError for an annotation naming a local class, and others
        raise WorkflowDefinitionError(
            f"workflow {name!r} v{version}: cannot resolve the annotations of {fn.__name__} "
            f"({error}); define the types at module level or pass input_type= and output_type="
        ) from None


def _checked_json(
    value: object, type_: Any, error: type[WorkflowError], what: str, where: str
) -> Any:
    """`value` checked against `type_` (`Any`: only that it is JSON data), as JSON."""
    try:
        if type_ is Any:
            return to_json(value)
        return to_json(adapter_for(type_).validate_python(value), type_)
    except ValidationError as problems:
        raise error(f"bad {what} of {where}: {_problems(problems, what)}") from None
    except (TypeError, ValueError) as problem:
        raise error(f"{what} of {where} is not JSON data: {problem}") from None
