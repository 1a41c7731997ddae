"""Quantization steps: torch.ao's dynamic int8, torchao's `quantize_` configs, static int8 through PT2E."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn

from bench_lib.results.case import SkipCase
from bench_lib.techniques.modules import Rows2d
from bench_lib.techniques.technique import Context, Step, linears

__all__ = ["quantize_dynamic", "torchao_step", "int8_dynamic_config", "int8_weight_only_config", "fp8_config",
           "fp8_weight_only_config", "int4_config", "pt2e_static", "semi_structured_fp8"]


def quantize_dynamic(model: nn.Module, ctx: Context) -> nn.Module:
    """`torch.ao.quantization.quantize_dynamic` on every Linear: fbgemm's int8 kernels (x86 engine)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def torchao_step(make_config: Callable[[], object], multiple_in: int = 1, multiple_out: int = 1) -> Step:
    """`torchao.quantization.quantize_` on the Linears whose shape its kernels accept.

    Every config gets `set_inductor_config=False`: torchao's recommended inductor settings
    (coordinate-descent autotuning) make one case's compile take minutes, too long for a suite;
    inductor defaults here (docs/validation/technique-notes.md).
    """

    def step(model: nn.Module, ctx: Context) -> nn.Module:
        from torchao.quantization import quantize_

        eligible = {name for name, _ in linears(model, multiple_in, multiple_out)}
        if not eligible:
            raise SkipCase(f"no Linear of {ctx.case.workload} has in/out features divisible by "
                           f"{multiple_in}/{multiple_out}, as this kernel needs")
        quantize_(model, make_config(), filter_fn=lambda m, fqn: fqn in eligible)
        return model

    return step


def int8_dynamic_config() -> object:
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig

    return Int8DynamicActivationInt8WeightConfig(set_inductor_config=False)


def int8_weight_only_config() -> object:
    from torchao.quantization import Int8WeightOnlyConfig

    return Int8WeightOnlyConfig(set_inductor_config=False)


def fp8_config(packing: str = "plain") -> Callable[[], object]:
    def make() -> object:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow
        from torchao.quantization.quantize_.workflows.float8.float8_packing_format import Float8PackingFormat

        return Float8DynamicActivationFloat8WeightConfig(granularity=PerRow(), set_inductor_config=False,
                                                         packing_format=Float8PackingFormat(packing))

    return make


def fp8_weight_only_config() -> object:
    from torchao.quantization import Float8WeightOnlyConfig

    return Float8WeightOnlyConfig(set_inductor_config=False)


def int4_config() -> object:
    from torchao.quantization import Int4WeightOnlyConfig

    # tinygemm's packing runs on torch's own `_weight_int4pack_mm`; the default (plain) packing
    # needs the separate `mslk` kernels package.
    return Int4WeightOnlyConfig(group_size=128, int4_packing_format="tile_packed_to_4d", set_inductor_config=False)


def pt2e_static(model: nn.Module, ctx: Context) -> nn.Module:
    """Export at the case's batch shape, X86InductorQuantizer (static int8), calibrate on training data in
    batches of that shape, convert, compile with freezing (here, so conversion time includes the compile).

    `torch.compile(options={"freezing": True})` fails in onednn.qlinear_prepack, so freezing is set in
    the global inductor config, but only while this model compiles: left on, it froze every model
    compiled after it in the same process, whose times then depended on which case the process had
    prepared first (docs/validation/technique-notes.md).
    """
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    example = ctx.workload.example_input(ctx.batch)
    exported = torch.export.export(model, (example,)).module()
    quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for x in ctx.workload.calibration_batches(ctx.batch, rows=max(64, 4 * ctx.batch)):
            prepared(x)
    converted = convert_pt2e(prepared)
    compiled = torch.compile(converted, dynamic=False)
    with torch._inductor.config.patch(freezing=True), torch.no_grad():
        compiled(example)  # compiles now, while freezing is on
    return compiled


def semi_structured_fp8(model: nn.Module, ctx: Context) -> nn.Module:
    import torchao  # noqa: F401 - registers torch.ops.torchao

    if not hasattr(torch.ops.torchao, "rowwise_scaled_linear_sparse_cutlass_f8f8"):
        raise SkipCase("torchao's sm90a CUTLASS extension (_C_cutlass_90a, which holds the fp8 2:4 kernel) "
                       f"did not load with torch {torch.__version__}")
    model = torchao_step(fp8_config("sparse_2d_data_2d_metadata"), 64, 64)(model, ctx)
    for name, linear in linears(model, 64, 64):
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, Rows2d(linear))
    return model
