"""Every case beside the machine's limit: its work, the pace it reached, and the fraction of each peak.

A case's worker counts the work of one call (`metrics["work"]`, from `measure/flops.py`: FLOPs, bytes,
the dtype it computes in); the run measures the peaks of its devices once (`environment.peaks`,
`measure/peaks.py`) and knows the data sheet's where it knows the device. The roofline block joins them
when a result is stored (`store.RunWriter`), from the figure's final time per call, so that an
interleaved case whose median moves with every block stores fractions of the median it ends with.
One path for every suite: a suite only says what one call's work is.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["compute_dtype", "peaks_key", "roofline_block"]

_ABOVE = "above 100% of the {which} {what} peak: the work count or the peak is wrong for this case"


def compute_dtype(variant: str, kind: str) -> str:
    """The dtype a technique's (or a training strategy's) GEMMs compute in on a device kind: int8 for
    dynamic int8 (activations quantized too), float8 for fp8 dynamic, float16 for fp16; otherwise the
    serving dtype (weight-only formats dequantize into it): bf16 on GPU (training: bf16 autocast), fp32 on CPU."""
    if "int8" in variant and "weight_only" not in variant:
        return "int8"
    if "fp8" in variant and "weight_only" not in variant:
        return "float8"
    if variant.startswith("fp16"):
        return "float16"
    return "bfloat16" if kind == "cuda" else "float32"


def peaks_key(device: str) -> str:
    """The key of a device in `environment.peaks`: "cpu", or "cuda:N" (plain "cuda" is device 0)."""
    if device.startswith("cuda"):
        return device if ":" in device else "cuda:0"
    return "cpu"


def _fraction(value: float, peak: float | None) -> float | None:
    return value / peak if peak else None


def roofline_block(work: dict[str, Any], seconds_per_call: float, device: str, peaks: dict[str, Any]) -> dict:
    """The case's roofline: its work per call (`work`), its achieved FLOP/s and bytes/s over
    `seconds_per_call`, and their fractions of the measured and the data-sheet peaks of `device`
    (None, with the reason, where a peak is not known)."""
    flops, nbytes, dtype = work.get("flops_per_call"), work.get("bytes_per_call"), work.get("compute_dtype")
    key = peaks_key(device)
    dev = peaks.get(key) or {}
    compute = (dev.get("compute") or {}).get(dtype) or {}
    memory = dev.get("memory") or {}
    ok = seconds_per_call and math.isfinite(seconds_per_call) and seconds_per_call > 0
    achieved_flops = flops / seconds_per_call if ok and flops else None
    achieved_bytes = nbytes / seconds_per_call if ok and nbytes else None
    block: dict[str, Any] = {
        "per": work.get("per", "call"),
        "flops_per_call": flops,
        "flops_counted_by": work.get("flops_counted_by"),
        "bytes_per_call": nbytes,
        "bytes_counted_by": work.get("bytes_counted_by"),
        "intensity_flops_per_byte": flops / nbytes if flops and nbytes else None,
        "seconds_per_call": seconds_per_call,
        "achieved_flops_per_s": achieved_flops,
        "achieved_bytes_per_s": achieved_bytes,
        "compute_dtype": dtype,
        "peaks_device": key,
        "peak_flops_measured": compute.get("measured_ops_per_s"),
        "peak_flops_data_sheet": compute.get("data_sheet_ops_per_s"),
        "peak_bytes_measured": memory.get("measured_bytes_per_s"),
        "peak_bytes_data_sheet": memory.get("data_sheet_bytes_per_s"),
    }
    for what, achieved in (("flops", achieved_flops), ("bytes", achieved_bytes)):
        for which in ("measured", "data_sheet"):
            block[f"{what}_fraction_{which}"] = _fraction(achieved, block[f"peak_{what}_{which}"]) \
                if achieved else None
    notes = []
    if dev.get("error"):
        notes.append(f"no measured peaks: {dev['error']}")
    elif not dev:
        notes.append(f"no measured peaks for {key} in this run")
    elif dtype and not compute:
        notes.append(f"no {dtype} GEMM probed on {key}")
    if block["peak_flops_data_sheet"] is None:
        notes.append(compute.get("data_sheet") or "data-sheet compute peak: not known")
    if block["peak_bytes_data_sheet"] is None:
        notes.append(memory.get("data_sheet") or "data-sheet bandwidth: not known")
    for what, name in (("flops", "compute"), ("bytes", "bandwidth")):
        for which in ("measured", "data_sheet"):
            if (block[f"{what}_fraction_{which}"] or 0) > 1:
                notes.append(_ABOVE.format(which=which.replace("_", "-"), what=name))
    block["notes"] = notes
    return block
