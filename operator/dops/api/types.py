"""FiftyOne-compatible value types of the delegated-operation API (pure: no I/O, no Kubernetes client).

Names, attributes and defaults follow FiftyOne 1.22.1 (`fiftyone.operators.executor`,
`fiftyone.operators._types.pipeline`, `fiftyone.factory`), so code written against FiftyOne's
`DelegatedOperationService` reads dops documents unchanged. Deliberate differences are listed in
docs/fiftyone-compat.md; the main ones visible here:

- `DelegatedOperationDocument.id` is the resource name (a string), not an ObjectId.
- datetimes are timezone-aware UTC (FiftyOne: naive UTC).
- `ExecutionResult.error_message` is loaded back (FiftyOne stores but drops it on load).

`DelegatedOperationDocument.from_resource` is the single place that maps a DelegatedOperation
resource (camelCase spec/status) to FiftyOne's attribute names.
"""

from __future__ import annotations

import copy
import datetime as dt
import enum
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .times import parse_time

log = logging.getLogger(__name__)

JSON = dict[str, Any]


class OperationNotFound(ValueError):
    """No delegated operation has this id (FiftyOne's `get` raises ValueError for it; so does this)."""

    def __init__(self, doc_id: str) -> None:
        super().__init__(f"No operation found with ID {doc_id}")
        self.doc_id = doc_id


class ExecutionError(RuntimeError):
    """Raised by `ExecutionResult.raise_exceptions()` for a result that carries an error."""


# --------------------------------------------------------------------------------------------- run states


class ExecutionRunState(enum.StrEnum):
    """Run states, FiftyOne's lower-case values. Members compare equal to their strings."""

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    PROCESSING = "processing"  # in FiftyOne's enum, rejected by its store (Enterprise only); the same here
    COMPLETED = "completed"
    FAILED = "failed"

    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES

    @classmethod
    def parse(cls, value: object) -> ExecutionRunState:
        """The state named by `value` (case-insensitive); ValueError("Invalid run_state: ...") otherwise."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls(value.lower())
            except ValueError:
                pass
        raise ValueError(f"Invalid run_state: {value!r} (expected one of {', '.join(s.value for s in cls)})")


TERMINAL_STATES = frozenset({ExecutionRunState.COMPLETED, ExecutionRunState.FAILED})
# States the store accepts (the CRD's enum): FiftyOne's `update_run_state` rejects "processing" too.
STORABLE_STATES = (
    ExecutionRunState.QUEUED,
    ExecutionRunState.SCHEDULED,
    ExecutionRunState.RUNNING,
    ExecutionRunState.COMPLETED,
    ExecutionRunState.FAILED,
)


# --------------------------------------------------------------------------------------------- progress / result


@dataclass
class ExecutionProgress:
    """A progress report: `progress` in [0, 1] or None, `label` text or None, `updated_at` set by the store."""

    progress: float | None = None
    label: str | None = None
    updated_at: dt.datetime | None = None

    def to_json(self) -> JSON:
        return {"progress": self.progress, "label": self.label, "updated_at": self.updated_at}

    @classmethod
    def from_resource(cls, data: Mapping[str, Any] | None) -> ExecutionProgress | None:
        if not data:
            return None
        value = data.get("progress")
        return cls(
            progress=float(value) if value is not None else None,
            label=data.get("label"),
            updated_at=parse_time(data.get("updatedAt")),
        )


@dataclass
class ExecutionResult:
    """The outcome of one execution (FiftyOne's constructor arguments and `to_json` keys)."""

    result: Any = None
    executor: Any = None
    error: str | None = None
    validation_ctx: Any = None
    delegated: bool = False
    outputs_schema: Any = None
    error_message: str | None = None

    @property
    def is_success(self) -> bool:
        return self.error is None

    def raise_exceptions(self) -> None:
        if self.error:
            raise ExecutionError(self.error_message or self.error)

    def to_json(self) -> JSON:
        return {
            "result": self.result,
            "executor": self.executor,
            "error": self.error,
            "error_message": self.error_message,
            "delegated": self.delegated,
            "validation_ctx": self.validation_ctx,
        }

    @classmethod
    def from_resource(cls, data: Mapping[str, Any] | None) -> ExecutionResult | None:
        """FiftyOne's load rule: a result exists only when `result` or `error` is truthy."""
        if not data or not (data.get("result") or data.get("error")):
            return None
        return cls(
            result=copy.deepcopy(data.get("result")),
            error=data.get("error"),
            error_message=data.get("errorMessage"),
        )


# --------------------------------------------------------------------------------------------- context


class ExecutionContext:
    """The persisted part of FiftyOne's ExecutionContext: its `request_params` (a JSON object).

    `params`, `dataset_name`, `dataset_id` and `delegation_target` read the usual request keys.
    The executing context (secrets, progress callbacks, the operator itself) belongs to the worker.
    """

    def __init__(self, request_params: Mapping[str, Any] | None = None) -> None:
        self.request_params: JSON = dict(request_params or {})

    @property
    def params(self) -> JSON:
        value = self.request_params.get("params")
        return value if isinstance(value, dict) else {}

    @property
    def dataset_name(self) -> str | None:
        value = self.request_params.get("dataset_name")
        return str(value) if value else None

    @property
    def dataset_id(self) -> str | None:
        value = self.request_params.get("dataset_id")
        return str(value) if value else None

    @property
    def delegation_target(self) -> str | None:
        value = self.request_params.get("delegation_target")
        return str(value) if value else None

    def serialize(self) -> JSON:
        return {"request_params": copy.deepcopy(self.request_params)}

    @classmethod
    def coerce(cls, value: Any) -> ExecutionContext:
        """An ExecutionContext from None, an ExecutionContext, or FiftyOne's serialized `{"request_params": {...}}`."""
        if value is None:
            return cls()
        if isinstance(value, ExecutionContext):
            return value
        request_params = getattr(value, "request_params", None)
        if isinstance(request_params, Mapping):  # a FiftyOne ExecutionContext
            return cls(request_params)
        if isinstance(value, Mapping):
            if "request_params" not in value:
                raise ValueError(
                    "context must be an ExecutionContext or a dict {'request_params': {...}}, "
                    f"got a dict with keys {sorted(value)}"
                )
            params = value["request_params"]
            if params is not None and not isinstance(params, Mapping):
                raise ValueError("context['request_params'] must be a dict")
            return cls(params)
        raise ValueError(f"context must be an ExecutionContext or a dict, not {type(value).__name__}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExecutionContext) and other.request_params == self.request_params

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ExecutionContext(request_params={self.request_params!r})"


# --------------------------------------------------------------------------------------------- pipelines

# Request-parameter overrides a stage may not set (FiftyOne strips them with an error log).
DISALLOWED_OVERRIDES = frozenset(
    {"dataset_id", "dataset_name", "delegated", "delegation_target", "request_delegation", "results"}
)
_STAGE_CAMEL = {
    "operator_uri": "operatorUri",
    "always_run": "alwaysRun",
    "name": "name",
    "num_distributed_tasks": "numDistributedTasks",
    "params": "params",
    "rerunnable": "rerunnable",
    "request_params_overrides": "requestParamsOverrides",
}


@dataclass(init=False)
class PipelineStage:
    """One stage of a pipeline (FiftyOne's PipelineStage; unknown keyword arguments are ignored)."""

    operator_uri: str
    always_run: bool = False
    name: str | None = None
    num_distributed_tasks: int | None = None
    params: JSON | None = None
    rerunnable: bool | None = None
    request_params_overrides: JSON | None = None

    def __init__(
        self,
        operator_uri: str | None = None,
        always_run: bool = False,
        name: str | None = None,
        num_distributed_tasks: int | None = None,
        params: Mapping[str, Any] | None = None,
        rerunnable: bool | None = None,
        request_params_overrides: Mapping[str, Any] | None = None,
        **_ignored: Any,
    ) -> None:
        if not operator_uri:
            raise ValueError("operator_uri must be a non-empty string")
        self.operator_uri = str(operator_uri)
        self.always_run = bool(always_run)
        self.name = name
        tasks = int(num_distributed_tasks) if num_distributed_tasks is not None else None
        self.num_distributed_tasks = tasks if tasks is not None and tasks >= 1 else None
        self.params = dict(params) if params is not None else None
        self.rerunnable = rerunnable
        overrides = dict(request_params_overrides) if request_params_overrides is not None else None
        if overrides:
            for key in sorted(DISALLOWED_OVERRIDES & overrides.keys()):
                log.error("pipeline stage %s: request_params_overrides may not set %r; removed", operator_uri, key)
                del overrides[key]
        self.request_params_overrides = overrides

    def to_json(self) -> JSON:
        return {
            "operator_uri": self.operator_uri,
            "always_run": self.always_run,
            "name": self.name,
            "num_distributed_tasks": self.num_distributed_tasks,
            "params": copy.deepcopy(self.params),
            "rerunnable": self.rerunnable,
            "request_params_overrides": copy.deepcopy(self.request_params_overrides),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PipelineStage:
        return cls(**dict(data))

    def to_resource(self) -> JSON:
        """The CRD form (camelCase keys, unset values omitted)."""
        return {_STAGE_CAMEL[k]: v for k, v in self.to_json().items() if v is not None}

    @classmethod
    def from_resource(cls, data: Mapping[str, Any]) -> PipelineStage:
        snake = {k: data[c] for k, c in _STAGE_CAMEL.items() if c in data}
        return cls(**snake)


class Pipeline:
    """An ordered list of stages (FiftyOne's Pipeline; unknown keyword arguments are ignored)."""

    def __init__(self, stages: Iterable[PipelineStage] | None = None, **_ignored: Any) -> None:
        self.stages: list[PipelineStage] = list(stages or [])

    def stage(
        self,
        operator_uri: str,
        always_run: bool = False,
        name: str | None = None,
        num_distributed_tasks: int | None = None,
        params: Mapping[str, Any] | None = None,
        rerunnable: bool | None = None,
        request_params_overrides: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> PipelineStage:
        """Append a stage and return it."""
        stage = PipelineStage(
            operator_uri=operator_uri,
            always_run=always_run,
            name=name,
            num_distributed_tasks=num_distributed_tasks,
            params=params,
            rerunnable=rerunnable,
            request_params_overrides=request_params_overrides,
            **kwargs,
        )
        self.stages.append(stage)
        return stage

    def to_json(self) -> JSON:
        return {"stages": [s.to_json() for s in self.stages]}

    @classmethod
    def from_json(cls, data: Any) -> Pipeline | None:
        if data is None:
            return None
        if isinstance(data, Pipeline):
            return data
        if isinstance(data, list):
            return cls(stages=[PipelineStage.from_json(s) for s in data])
        if isinstance(data, Mapping):
            return cls(stages=[PipelineStage.from_json(s) for s in data.get("stages") or []])
        raise ValueError(f"pipeline must be a Pipeline, a dict or a list of stages, not {type(data).__name__}")

    def to_resource(self) -> JSON:
        return {"stages": [s.to_resource() for s in self.stages]}

    @classmethod
    def from_resource(cls, data: Mapping[str, Any] | None) -> Pipeline | None:
        if data is None:
            return None
        return cls(stages=[PipelineStage.from_resource(s) for s in data.get("stages") or []])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pipeline) and other.stages == self.stages

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Pipeline(stages={self.stages!r})"


@dataclass(init=False)
class PipelineRunInfo:
    """Run-time state of a pipeline parent (FiftyOne's PipelineRunInfo)."""

    active: bool = True
    expected_children: list[int] | None = None
    stage_index: int = 0
    child_errors: dict[str, str] | None = None

    def __init__(
        self,
        active: bool = True,
        expected_children: Iterable[int] | None = None,
        stage_index: int = 0,
        child_errors: Mapping[str, str] | None = None,
        **_ignored: Any,
    ) -> None:
        self.active = bool(active)
        self.expected_children = list(expected_children) if expected_children is not None else None
        self.stage_index = int(stage_index)
        self.child_errors = dict(child_errors) if child_errors is not None else None

    def to_json(self) -> JSON:
        return {
            "active": self.active,
            "expected_children": self.expected_children,
            "stage_index": self.stage_index,
            "child_errors": self.child_errors,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> PipelineRunInfo | None:
        if data is None:
            return None
        return cls(**dict(data))

    def to_resource(self) -> JSON:
        out: JSON = {"active": self.active, "stageIndex": self.stage_index}
        if self.expected_children is not None:
            out["expectedChildren"] = list(self.expected_children)
        if self.child_errors is not None:
            out["childErrors"] = dict(self.child_errors)
        return out

    @classmethod
    def from_resource(cls, data: Mapping[str, Any] | None) -> PipelineRunInfo | None:
        if data is None:
            return None
        return cls(
            active=data.get("active", True),
            expected_children=data.get("expectedChildren"),
            stage_index=data.get("stageIndex", 0),
            child_errors=data.get("childErrors"),
        )


# --------------------------------------------------------------------------------------------- paging


class SortByField(enum.StrEnum):
    """Sort fields FiftyOne names; any document attribute name is accepted by `list_operations` too."""

    UPDATED_AT = "updated_at"
    SCHEDULED_AT = "scheduled_at"
    QUEUED_AT = "queued_at"
    COMPLETED_AT = "completed_at"
    STARTED_AT = "started_at"
    FAILED_AT = "failed_at"
    OPERATOR = "operator"


class SortDirection(enum.IntEnum):
    ASCENDING = 1
    DESCENDING = -1


@dataclass
class DelegatedOperationPagingParams:
    """FiftyOne's paging: note the class default limit is 10 while *no* paging means 1000."""

    sort_by: str | None = SortByField.QUEUED_AT
    sort_direction: int = SortDirection.DESCENDING
    skip: int | None = 0
    limit: int | None = 10


# --------------------------------------------------------------------------------------------- the document


def _opt_str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _str_or_none(value: Any) -> str | None:
    """A stored string as FiftyOne returns it: "" stays "" (only a missing value is None)."""
    return str(value) if value is not None else None


@dataclass
class DelegatedOperationDocument:
    """One delegated operation, with FiftyOne's attribute names, read from a DelegatedOperation resource.

    Extra attributes: `namespace`, `resource_version`, `job_name`, `pod_name`, `attempt` and
    `resource` (the raw resource, FiftyOne's `_doc`).
    """

    id: str | None = None
    operator: str | None = None
    label: str | None = None
    delegation_target: str | None = None
    context: ExecutionContext | None = None
    run_state: ExecutionRunState | None = None
    queued_at: dt.datetime | None = None
    scheduled_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    failed_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    status: ExecutionProgress | None = None
    result: ExecutionResult | None = None
    run_link: str | None = None
    log_path: str | None = None
    log_size: int | None = None
    log_tail: str | None = None
    log_upload_error: str | None = None
    pinned: bool = False
    archived: bool = False
    rerunnable: bool = True
    metadata: JSON = field(default_factory=dict)
    dataset_id: str | None = None
    parent_id: str | None = None
    pipeline: Pipeline | None = None
    pipeline_run_info: PipelineRunInfo | None = None
    monitored: bool = False
    # dops extras
    namespace: str | None = None
    resource_version: str | None = None
    job_name: str | None = None
    pod_name: str | None = None
    attempt: int | None = None
    resource: JSON | None = field(default=None, repr=False, compare=False)

    @property
    def num_distributed_tasks(self) -> int | None:
        """Always None, as in FiftyOne's open-source build."""
        return None

    @property
    def _doc(self) -> JSON | None:  # FiftyOne's name for the raw stored document
        return self.resource

    @property
    def name(self) -> str | None:
        return self.id

    @classmethod
    def from_resource(cls, obj: Mapping[str, Any]) -> DelegatedOperationDocument:
        """Read a DelegatedOperation resource (a dict as the API returns it)."""
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        operator = _opt_str(spec.get("operator"))
        state = status.get("runState")
        metadata: JSON = copy.deepcopy(dict(spec.get("metadata") or {}))
        if spec.get("inputsSchema") is not None:
            metadata["inputs_schema"] = copy.deepcopy(spec["inputsSchema"])
        if status.get("outputsSchema") is not None:
            metadata["outputs_schema"] = copy.deepcopy(status["outputsSchema"])
        log_size = status.get("logSize")
        attempt = status.get("attempt")
        return cls(
            id=meta.get("name"),
            operator=operator,
            # a stored "" stays "" (FiftyOne's set_label(id, "")); only a missing label is the operator URI
            label=_str_or_none(spec.get("label")) if spec.get("label") is not None else operator,
            delegation_target=_str_or_none(spec.get("delegationTarget")),
            context=ExecutionContext(copy.deepcopy(spec.get("context") or {})),
            run_state=ExecutionRunState.parse(state) if state else None,
            queued_at=parse_time(status.get("queuedAt")),
            scheduled_at=parse_time(status.get("scheduledAt")),
            started_at=parse_time(status.get("startedAt")),
            completed_at=parse_time(status.get("completedAt")),
            failed_at=parse_time(status.get("failedAt")),
            updated_at=parse_time(status.get("updatedAt")),
            status=ExecutionProgress.from_resource(status.get("progress")),
            result=ExecutionResult.from_resource(status.get("result")),
            run_link=_str_or_none(status.get("runLink")),
            log_path=_str_or_none(status.get("logPath")),
            log_size=int(log_size) if log_size is not None else None,
            log_upload_error=_str_or_none(status.get("logUploadError")),
            pinned=bool(spec.get("pinned", False)),
            archived=bool(spec.get("archived", False)),
            rerunnable=bool(spec.get("rerunnable", True)),
            metadata=metadata,
            dataset_id=_opt_str(spec.get("datasetId")),
            parent_id=_opt_str(spec.get("parentId")),
            pipeline=Pipeline.from_resource(spec.get("pipeline")),
            pipeline_run_info=PipelineRunInfo.from_resource(status.get("pipelineRunInfo")),
            monitored=bool(status.get("monitored", False)),
            namespace=meta.get("namespace"),
            resource_version=meta.get("resourceVersion"),
            job_name=_opt_str(status.get("jobName")),
            pod_name=_opt_str(status.get("podName")),
            attempt=int(attempt) if attempt is not None else None,
            resource=dict(obj),
        )

    def to_dict(self) -> JSON:
        """FiftyOne-style JSON of the document (snake_case keys, ISO timestamps)."""

        def when(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "id": self.id,
            "namespace": self.namespace,
            "operator": self.operator,
            "label": self.label,
            "delegation_target": self.delegation_target,
            "context": self.context.serialize() if self.context is not None else None,
            "run_state": str(self.run_state) if self.run_state is not None else None,
            "queued_at": when(self.queued_at),
            "scheduled_at": when(self.scheduled_at),
            "started_at": when(self.started_at),
            "completed_at": when(self.completed_at),
            "failed_at": when(self.failed_at),
            "updated_at": when(self.updated_at),
            "status": (
                {
                    "progress": self.status.progress,
                    "label": self.status.label,
                    "updated_at": when(self.status.updated_at),
                }
                if self.status is not None
                else None
            ),
            "result": self.result.to_json() if self.result is not None else None,
            "run_link": self.run_link,
            "log_path": self.log_path,
            "log_size": self.log_size,
            "log_upload_error": self.log_upload_error,
            "pinned": self.pinned,
            "archived": self.archived,
            "rerunnable": self.rerunnable,
            "metadata": copy.deepcopy(self.metadata),
            "dataset_id": self.dataset_id,
            "parent_id": self.parent_id,
            "pipeline": self.pipeline.to_json() if self.pipeline is not None else None,
            "pipeline_run_info": self.pipeline_run_info.to_json() if self.pipeline_run_info is not None else None,
            "monitored": self.monitored,
        }
