"""The vendors' data-sheet peaks of the devices effbench knows: memory bandwidth and dense compute per dtype.

A figure beside its limit needs the limit from somewhere other than the run itself: the measured peaks
(`peaks.py`) say what this machine reaches, the data sheet what it was sold as. Only figures printed in
the vendor's data sheet are here (dense, without the 2:4-sparsity doubling the sheets print beside
them); a device or dtype missing from the table is "not known", never estimated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DTYPES", "DataSheet", "DATA_SHEETS", "data_sheet", "not_known"]

#: The dtypes a device kind's peaks are probed in (`peaks.py`; a run asks for those its cases compute in).
DTYPES = {"cpu": ("float32", "int8"), "cuda": ("bfloat16", "float16", "float8", "int8", "float32")}


@dataclass(frozen=True)
class DataSheet:
    """One device's data sheet: `key` is matched as a substring of `torch.cuda.get_device_name`."""

    key: str
    source: str
    bandwidth_bytes_per_s: float
    dense_ops_per_s: dict[str, float] = field(default_factory=dict)  # dtype name -> FLOP/s (int8: OP/s)


_HOPPER_SXM = {"bfloat16": 989e12, "float16": 989e12, "float8": 1979e12, "int8": 1979e12, "float32": 67e12}

# First match wins: the specific names (NVL, PCIe) before the plain H100, which is the SXM part.
DATA_SHEETS: tuple[DataSheet, ...] = (
    DataSheet("H200", "NVIDIA H200 data sheet: 4.8 TB/s HBM3e; dense bf16/fp16 989, fp8 1,979 TFLOP/s, int8 1,979 "
              "TOPS, fp32 67 TFLOP/s (SXM)", 4.8e12, _HOPPER_SXM),
    DataSheet("H100 NVL", "NVIDIA H100 NVL data sheet: 3.9 TB/s", 3.9e12),
    DataSheet("H100 PCIe", "NVIDIA H100 PCIe data sheet: 2.0 TB/s", 2.0e12),
    DataSheet("H100", "NVIDIA H100 SXM data sheet: 3.35 TB/s HBM3; dense bf16/fp16 989, fp8 1,979 TFLOP/s, int8 "
              "1,979 TOPS, fp32 67 TFLOP/s", 3.35e12, _HOPPER_SXM),
    DataSheet("A100-SXM4-80GB", "NVIDIA A100 80GB SXM data sheet: 2.039 TB/s; dense bf16/fp16 312 TFLOP/s, int8 "
              "624 TOPS, fp32 19.5 TFLOP/s", 2.039e12,
              {"bfloat16": 312e12, "float16": 312e12, "int8": 624e12, "float32": 19.5e12}),
    DataSheet("A100-SXM4-40GB", "NVIDIA A100 40GB data sheet: 1.555 TB/s; dense bf16/fp16 312 TFLOP/s, int8 "
              "624 TOPS, fp32 19.5 TFLOP/s", 1.555e12,
              {"bfloat16": 312e12, "float16": 312e12, "int8": 624e12, "float32": 19.5e12}),
)


def data_sheet(device_name: str | None) -> DataSheet | None:
    """The data sheet of a device by its name (a CPU has none here: its peaks are measured only)."""
    return next((s for s in DATA_SHEETS if device_name and s.key in device_name), None)


def not_known(what: str, device_name: str | None) -> str:
    """The sentence stored where a data-sheet figure is missing."""
    return f"not known: no data-sheet {what} known for {device_name or 'this CPU'}"
