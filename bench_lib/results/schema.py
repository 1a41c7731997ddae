"""The schema of effbench's result files: pydantic models of what the store writes, the one
validation that every reader goes through, and the JSON Schema published from them.

A file is pytest-benchmark's JSON layout (`machine_info`, `commit_info`, `benchmarks[]` with
`stats`, `datetime`, `version`) with effbench's fields beside it (`extra_info` of each entry,
the `effbench` section). Validation is strict: a string is never read as a number, a number
never as a string, a time is finite and non-negative, so that a corrupted or foreign file is
refused at the door with the path of the first bad field, not met later as a TypeError or as a
figure silently wrong. Unknown extra fields are allowed (pytest-benchmark and later versions of
effbench may add some); an unknown schema version is not.

Fields added over the format's life (the sampling units of interleaved runs, the machine-state
spread, the kind of unit) are optional, so every file effbench has written still reads.

`python -m bench_lib.results.schema` writes the JSON Schema to docs/schema/ (tests check that the
published file is current).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, ValidationError, WithJsonSchema,
                      model_validator)
from pydantic_core import ErrorDetails, PydanticCustomError

from bench_lib.results.record import SCHEMA_VERSION

__all__ = ["ResultFormatError", "ResultFile", "Benchmark", "Outcome", "parse", "json_schema", "json_schema_text",
           "PUBLISHED"]

PUBLISHED = Path("docs") / "schema" / "effbench-results.schema.json"  # from the repository's root


class ResultFormatError(Exception):
    """A results path that is missing, foreign or malformed; the message names it (one line)."""


def _known_version(version: int) -> int:
    if version != SCHEMA_VERSION:
        raise PydanticCustomError("schema_version", "unknown schema version {version} (this effbench reads "
                                  "version {known})", {"version": version, "known": SCHEMA_VERSION})
    return version


def _scalar(value: object) -> str | int | float | bool:
    if not isinstance(value, (str, int, float, bool)) or (isinstance(value, float) and not math.isfinite(value)):
        raise PydanticCustomError("scalar_type", "expected a string, a finite number or a boolean, got {got}",
                                  {"got": _json_type(value)})
    return value


Version = Annotated[int, AfterValidator(_known_version), Field(json_schema_extra={"const": SCHEMA_VERSION})]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Seconds = NonNegative  # a time: finite and non-negative
# A derived quotient, unbounded or undefined at times: NaN or infinity in a worker's record, null in a file.
Quotient = float | None
Count = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]
Scalar = Annotated[Any, PlainValidator(_scalar), WithJsonSchema({"type": ["string", "number", "boolean"]})]
JSONObject = dict[str, Any]


class _Strict(BaseModel):
    """Strict types; extra fields allowed and kept as they are."""

    model_config = ConfigDict(strict=True, extra="allow", use_attribute_docstrings=True)


class Params(_Strict):
    """The case's identity and its parameters (pytest-benchmark's `params`); every other key is a
    parameter of the case, a string, number or boolean."""

    __pydantic_extra__: dict[str, Scalar] = Field(init=False)
    suite: str
    workload: str
    variant: str
    """The technique, strategy or operation measured."""
    device: str


class Stats(_Strict):
    """pytest-benchmark's statistics of the samples (seconds); `data` holds the raw samples."""

    min: Seconds
    max: Seconds
    mean: Seconds
    stddev: Seconds
    median: Seconds
    iqr: Seconds
    q1: Seconds
    q3: Seconds
    ld15iqr: Seconds
    hd15iqr: Seconds
    ops: NonNegative
    total: Seconds
    rounds: Positive
    iterations: Positive
    """Calls per sample: each sample is one call's time, measured over this many calls."""
    iqr_outliers: Count
    stddev_outliers: Count
    outliers: str
    data: list[Seconds] = Field(min_length=1)
    """The raw samples, seconds per call: every statistic is derived from them."""


class Summary(_Strict):
    """effbench's statistics of the samples: median, its 95% interval, spread."""

    median: Seconds
    ci95_low: Seconds
    ci95_high: Seconds
    iqr: Seconds
    p90: Seconds
    p99: Seconds
    n: Positive
    number_per_sample: Positive
    relative_spread: Quotient
    warnings: list[str]
    machine_state_sd: NonNegative | None = None
    processes: Positive | None = None
    """How many units (of `extra_info.process_kind`) took the samples."""
    per_process_median: dict[str, Seconds] | None = None
    process_spread: Quotient = None
    interval: str | None = None


class Roofline(_Strict):
    """A case beside the machine's limit (`results/roofline.py`): its work per call, the pace it reached,
    and the fractions of the measured and the data-sheet peaks (None where a peak is not known)."""

    per: str
    flops_per_call: NonNegative | None = None
    flops_counted_by: str | None = None
    bytes_per_call: NonNegative | None = None
    bytes_counted_by: str | None = None
    intensity_flops_per_byte: NonNegative | None = None
    seconds_per_call: Seconds
    achieved_flops_per_s: NonNegative | None = None
    achieved_bytes_per_s: NonNegative | None = None
    compute_dtype: str | None = None
    peaks_device: str
    peak_flops_measured: NonNegative | None = None
    peak_flops_data_sheet: NonNegative | None = None
    peak_bytes_measured: NonNegative | None = None
    peak_bytes_data_sheet: NonNegative | None = None
    flops_fraction_measured: NonNegative | None = None
    flops_fraction_data_sheet: NonNegative | None = None
    bytes_fraction_measured: NonNegative | None = None
    bytes_fraction_data_sheet: NonNegative | None = None
    notes: list[str]


class Metrics(_Strict):
    """The case's figures: every key is free (throughput, memory, size, accuracy, energy, paired
    speedups...) but the roofline, which is typed."""

    roofline: Roofline | None = None


class ExtraInfo(_Strict):
    """effbench's fields of a measured case, beside pytest-benchmark's."""

    effbench_schema: Version
    unit: str
    summary: Summary
    metrics: Metrics
    """The case's other figures (throughput, memory, size, accuracy, energy, paired speedups...)."""
    wall_s: Seconds
    process_of_sample: list[Count] | None = None
    """The unit of the interval that took each sample, one label per sample in `stats.data`; what
    a unit is (a process, a launch, a training stretch, a seed) is `process_kind`."""
    machine_state_sd: NonNegative | None = None
    """Log-scale spread of the run's machine state, added to the interval."""
    process_kind: str | None = None
    """What a `process_of_sample` label names; a process where absent."""


class Benchmark(_Strict):
    """A measured case, as a pytest-benchmark `benchmarks[]` entry."""

    group: str
    name: str
    fullname: str
    params: Params
    param: str
    extra_info: ExtraInfo
    options: JSONObject
    """How it was measured: the timer and the profile's settings."""
    stats: Stats

    @model_validator(mode="after")
    def _labels_match_samples(self) -> Benchmark:
        labels = self.extra_info.process_of_sample
        if labels is not None and len(labels) != len(self.stats.data):
            raise PydanticCustomError("label_count", "extra_info.process_of_sample has {labels} labels for "
                                      "{samples} samples in stats.data",
                                      {"labels": len(labels), "samples": len(self.stats.data)})
        return self


class Outcome(_Strict):
    """Every case's outcome, measured or not; a skipped case carries its reason, a failed one its error."""

    name: str
    group: str
    params: Params
    status: Literal["ok", "skipped", "failed"]
    reason: str
    metrics: JSONObject
    wall_s: Seconds


class Gpu(_Strict):
    name: str


class ComputePeak(_Strict):
    """A dense GEMM's peak in one dtype: measured in this run (None, with `method` saying why, where it could
    not run) beside the data sheet's (None where not known; `data_sheet` says which sheet, or "not known")."""

    measured_ops_per_s: NonNegative | None = None
    method: str | None = None
    data_sheet_ops_per_s: NonNegative | None = None
    data_sheet: str


class MemoryPeak(_Strict):
    """A streaming copy's bandwidth in this run beside the data sheet's."""

    measured_bytes_per_s: NonNegative
    method: str
    data_sheet_bytes_per_s: NonNegative | None = None
    data_sheet: str


class DevicePeaks(_Strict):
    """One device's peaks, measured once per run (`measure/peaks.py`), or the error of its probe."""

    device: str
    name: str | None = None
    memory: MemoryPeak | None = None
    compute: dict[str, ComputePeak] | None = None
    probe_s: Seconds | None = None
    wall_s: Seconds | None = None
    error: str | None = None


class OtherProcess(_Strict):
    """A process of another run or user seen on a device of this run (NVML's compute processes)."""

    pid: int
    name: str | None = None
    gpu: int
    used_memory_bytes: int | None = None
    visible: bool = True
    """False where this PID namespace cannot see the pid (a container): it may be this run's own."""
    first_seen_s: Seconds
    last_seen_s: Seconds


class DeviceIsolation(_Strict):
    """Whether the run had its devices to itself (`execution/isolation.py`): other processes on its GPUs
    before and during the run. `shared` true means its timings, energy and peaks are not its own alone;
    None: not known (not checked, or only processes whose pids this namespace cannot see)."""

    checked: bool
    method: str
    shared: bool | None = None
    other_processes: list[OtherProcess] = []
    checks: Count = 0


class Environment(_Strict):
    """What the run measured on (`results.environment.capture`); the fields that readers use are typed."""

    captured_at: str | None = None
    python: str | None = None
    cpu_model: str | None = None
    cpu_count: int | None = None
    torch: str | None = None
    cuda: str | None = None
    nccl: str | None = None
    torchao: str | None = None
    num_threads: int | None = None
    cpu_capability: str | None = None
    gpus: list[Gpu] | None = None
    peaks: dict[str, DevicePeaks] | None = None
    """The run's measured and data-sheet peaks per device ("cpu", "cuda:0", ...); absent in older runs."""
    device_isolation: DeviceIsolation | None = None
    """Other processes on the run's GPUs; absent in older runs."""


class CommitInfo(_Strict):
    """pytest-benchmark's `commit_info`: the code measured."""

    id: str | None = None
    dirty: bool | None = None
    time: str | None = None


class Effbench(_Strict):
    """effbench's section of the file."""

    schema_version: Version
    tool_version: str
    suite: str
    run: JSONObject
    """The run's options: profile, device, command line, interleaving."""
    environment: Environment
    outcomes: list[Outcome]


class ResultFile(_Strict):
    """One suite's results of one run: `results/<run>/<suite>.json`."""

    machine_info: JSONObject
    commit_info: CommitInfo
    benchmarks: list[Benchmark]
    datetime: str
    version: str
    """The pytest-benchmark version whose layout the file follows."""
    effbench: Effbench


M = TypeVar("M", bound=BaseModel)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    for kind, word in ((dict, "an object"), (list, "a list"), (str, "a string"), (int, "an integer"),
                       (float, "a number")):
        if isinstance(value, kind):
            return word
    return type(value).__name__


_EXPECTED = {"dict_type": "an object", "model_type": "an object", "model_attributes_type": "an object",
             "list_type": "a list", "string_type": "a string", "int_type": "an integer", "float_type": "a number",
             "bool_type": "a boolean", "finite_number": "a finite number"}


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _describe(error: ErrorDetails) -> str:
    kind, given = error["type"], error.get("input")
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_json_type(given)}"
    if kind == "missing":
        return "missing"
    if kind == "greater_than_equal":
        return f"expected a number >= {error.get('ctx', {}).get('ge', 0):g}, got {given!r}"
    if kind == "literal_error":
        return f"expected {error.get('ctx', {}).get('expected')}, got {given!r}"
    if kind == "too_short":
        return "expected at least one item, got none"
    return error["msg"]


def _first_problem(e: ValidationError, at: str) -> str:
    """The error to name: a file that is no effbench file at all, then an unknown or malformed schema
    version (it explains the other errors), then the first error found."""
    errors = e.errors(include_url=False)
    if errors[0]["type"] == "json_invalid":
        return f"not valid JSON ({errors[0]['msg']})"
    if any(x["loc"] == ("effbench",) and x["type"] == "missing" for x in errors):
        return "not an effbench result file (no 'effbench' section; a plain pytest-benchmark file?)"
    error = next((x for x in errors if x["type"] == "schema_version" or x["loc"] == ("effbench", "schema_version")),
                 errors[0])
    path = _path((at, *error["loc"]) if at else error["loc"])
    return f"{path}: {_describe(error)}" if path else f"not a result file: {_describe(error)}"


def parse(model: type[M], data: object, origin: object, at: str = "") -> M:
    """`data` (an object, or bytes: the JSON text of one) validated as `model`, the one way results are
    read. Raises ResultFormatError naming `origin` (a file, a worker) and the path of the first bad
    field (under `at`, where `data` sits in what `origin` sent)."""
    try:
        return model.model_validate_json(data) if isinstance(data, bytes) else model.model_validate(data)
    except ValidationError as e:
        raise ResultFormatError(f"{origin}: {_first_problem(e, at)}") from None


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a result file, as published in docs/schema/."""
    schema = ResultFile.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the published schema: `python -m bench_lib.results.schema [PATH]`, from the repository's root."""
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else PUBLISHED
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json_schema_text())
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
