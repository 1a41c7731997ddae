"""A user's own model (issue 28): specs checked before anything runs, cases of the user's model in every suite,
a transformers checkpoint as a Workload (quality against its fp32 reference, what identifies it), a py: factory,
and the run file. Checkpoints are tiny and made here (tests/tiny_hf.py)."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import REPO, effbench, user_module
from tiny_hf import FAMILIES, tiny_checkpoint

from bench_lib.cli import main
from bench_lib.execution.session import plan
from bench_lib.results.case import CaseSpec
from bench_lib.workloads.user import model_spec, workload_of
from bench_lib.workloads.user.spec import ModelSpec, check_model, parse_model, resolve_model

FACTORIES = '''
import torch
from torch import nn
from bench_lib.workloads.user.adapter import ModuleWorkload

def good():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    return ModuleWorkload(model.eval(), eval_data=torch.randn(24, 16))

def broken():
    raise RuntimeError("the weights server is down")

not_callable = 3
'''


@pytest.fixture
def factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's module of factories, importable from the working directory as the CLI's user would have it."""
    user_module(tmp_path, monkeypatch, "um_factories", FACTORIES)
    monkeypatch.setenv("EFFBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _bad(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_parse_model_names_the_case_and_refuses_other_forms() -> None:
    spec = parse_model("hf:some/dir/My-Model.v2")
    assert (spec.kind, spec.target, spec.name) == ("hf", os.path.abspath("some/dir/My-Model.v2"), "My_Model.v2")
    assert parse_model("py:pkg.mod:make_it") == ModelSpec("py:pkg.mod:make_it", "py", "pkg.mod:make_it", "make_it")
    for text in ("nonsense", "hf:", "py:mod", "py:mod:a:b", "gguf:/x"):
        with pytest.raises(ValueError, match="expected hf:PATH"):
            parse_model(text)


def test_check_model_refuses_what_cannot_load(tmp_path: Path, ckpt: Path, factories: Path) -> None:
    def refused(text: str) -> str:
        with pytest.raises(ValueError) as e:
            check_model(parse_model(text))
        assert "\n" not in str(e.value)
        return str(e.value)

    assert "no such directory" in refused(f"hf:{tmp_path}/missing")
    (tmp_path / "empty").mkdir()
    assert "no config.json" in refused(f"hf:{tmp_path}/empty")
    (tmp_path / "alien").mkdir()
    (tmp_path / "alien" / "config.json").write_text('{"model_type": "no-such-architecture"}')
    assert "not an architecture transformers" in refused(f"hf:{tmp_path}/alien")
    notok = tmp_path / "notok"
    notok.mkdir()
    for f in ckpt.iterdir():
        if "token" not in f.name:
            (notok / f.name).write_bytes(f.read_bytes())
    assert "no tokenizer files" in refused(f"hf:{notok}")
    (notok / "tokenizer.json").write_bytes((ckpt / "tokenizer.json").read_bytes())
    check_model(parse_model(f"hf:{notok}"))
    for f in notok.glob("*.safetensors"):
        f.unlink()
    assert "no safetensors weights" in refused(f"hf:{notok}")
    assert "cannot import no_such_module_xyz" in refused("py:no_such_module_xyz:build")
    assert "is not callable" in refused("py:um_factories:not_callable")
    assert "has no attribute 'nothing'" in refused("py:um_factories:nothing")
    check_model(parse_model("py:um_factories:broken"))  # it raises when called, at run time


def test_check_model_without_transformers_names_the_extra(ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else real(name))
    with pytest.raises(ValueError, match=r"pip install 'effbench\[hf\]'"):
        check_model(parse_model(f"hf:{ckpt}"))


@pytest.mark.parametrize("argv", [
    ["run", "--suite", "inference", "--model", "nonsense"],
    ["list", "--model", "hf:/no/such/dir"],
    ["run", "--model", "py:no_such_module_xyz:build"],
    ["run", "--config", "/no/such/bench.toml"],
    ["list", "--suite", "inference", "--eval-text", "/no/such.txt"],
])
def test_bad_model_input_exits_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    _bad(argv, capsys)


def test_bad_run_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("this is = = not toml\n")
    assert "not valid TOML" in _bad(["run", "--config", str(bad)], capsys)
    bad.write_text('suites = ["inference"]\nmodel = "hf:x"\n')
    assert "unknown key 'model'" in _bad(["run", "--config", str(bad)], capsys)
    bad.write_text("batches = [1, \"8\"]\n")
    assert "batches must be a list of integers" in _bad(["run", "--config", str(bad)], capsys)


def test_cases_of_a_users_model_in_every_suite(ckpt: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["list", "--suite", "inference,training,decode,collectives", "--device", "cpu",
                 "--model", f"hf:{ckpt}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    inference = [line for line in lines if line.startswith("test_inference[")]
    assert inference and all(line.startswith("test_inference[tiny_llama-") and "[run]" in line for line in inference)
    assert any("-int8_dynamic-" in line for line in inference) and any("-structured-" in line for line in inference)
    training = [line for line in lines if line.startswith("test_training[tiny_llama-")]
    assert any(line.startswith("test_training[tiny_llama-sync-backendgloo-") and "[run]" in line for line in training)
    assert any("-async_stale-" in line and "[run]" in line for line in training)
    assert not any(str(ckpt) in line for line in lines)  # ids carry the model's name, not its path
    decode = [line for line in lines if line.startswith("test_decode[")]
    assert any("-modehf_generate-" in line and "[run]" in line for line in decode)  # transformers' own path
    assert any("-modeeager-" in line and "[run]" in line for line in decode)  # effbench's engine
    assert not any(line.startswith("test_collectives[") for line in lines)


def test_plan_carries_the_models_options_to_every_case(ckpt: Path, tmp_path: Path) -> None:
    spec = resolve_model(f"hf:{ckpt}")
    text = tmp_path / "mine.txt"
    planned = plan(["inference"], "quick", "cpu", "all", "int8_dynamic and not torchao", models=(spec,),
                   model_params={"eval_text": str(text)}, batches=(2, 4))
    cases = [p.case for p in planned]
    assert [c.param("batch") for c in cases] == [2, 4]
    for case in cases:
        assert case.workload == spec.name and case.param("model") == spec.text == f"hf:{ckpt}"
        assert case.param("eval_text") == str(text) and model_spec(case) == spec
    builtin = plan(["inference"], "quick", "cpu", "all", "digits_mlp-int8_dynamic-batch1")
    assert [p.case.param("model") for p in builtin] == [None]


def test_checkpoint_workload_judges_against_its_fp32_reference(ckpt: Path) -> None:
    case = CaseSpec.make("inference", "tiny_llama", "fp32", "cpu", batch=1, model=f"hf:{ckpt}", quality_target=0.9)
    workload = workload_of(case)
    assert workload is workload_of(case)  # built once per process
    reference = workload.reference()
    assert all(p.dtype == torch.float32 for p in reference.parameters())
    x = workload.eval_inputs()
    assert x.dtype == torch.long and x.shape == (8, 128) and int(x.max()) < reference.model.config.vocab_size
    ref_out = workload.outputs(reference, x, 4, "cpu", torch.float32)
    same = workload.quality(ref_out, ref_out)
    assert same["quality_kept"] == pytest.approx(1.0) and same["quality_verdict"] == "pass"
    assert same["agreement_with_reference"] == 1.0 and same["quality_target"] == 0.9
    assert 100 < same["perplexity"] < 1000  # random weights over 320 tokens: about the vocabulary's size
    worse = workload.quality(ref_out + 3 * torch.randn_like(ref_out), ref_out)
    assert worse["perplexity"] > same["perplexity"] and worse["quality_verdict"] == "fail"
    facts = workload.identity()
    assert facts["model_architecture"] == "LlamaForCausalLM" and facts["model_source"] == f"hf:{ckpt}"
    assert facts["model_parameters"] == sum(p.numel() for p in reference.parameters())
    assert len(facts["model_config_sha256"]) == 64 and facts["transformers_version"]
    assert facts["eval_text_source"] == "python stdlib pydoc_data.topics"


def test_the_users_eval_text_is_read_by_the_checkpoints_tokenizer(ckpt: Path, tmp_path: Path) -> None:
    from pydoc_data.topics import topics

    text = tmp_path / "mine.txt"
    text.write_text(topics["for"] * 4)
    case = CaseSpec.make("inference", "tiny_llama", "fp32", "cpu", batch=1, model=f"hf:{ckpt}", eval_text=str(text))
    workload = workload_of(case)
    builtin_text = workload_of(CaseSpec.make("inference", "tiny_llama", "fp32", "cpu", batch=1, model=f"hf:{ckpt}"))
    facts = workload.identity()
    assert facts["eval_text_source"] == str(text)
    assert facts["eval_text_sha256"] != builtin_text.identity()["eval_text_sha256"]
    assert workload.eval_inputs().shape == (8, 128)
    (tmp_path / "short.txt").write_text("Too short.")
    short = workload_of(CaseSpec.make("inference", "tiny_llama", "fp32", "cpu", batch=1, model=f"hf:{ckpt}",
                                      eval_text=str(tmp_path / "short.txt")))
    with pytest.raises(ValueError, match="short.txt is too short"):
        short.eval_inputs()


@pytest.mark.parametrize("family", FAMILIES)
def test_structured_pruning_cuts_a_gated_mlp_and_still_runs(family: str, ckpt: Path, tmp_path: Path) -> None:
    from bench_lib.techniques.structured import remove_units

    path = ckpt if family == "llama" else tiny_checkpoint(tmp_path / f"tiny-{family}", family)
    workload = workload_of(CaseSpec.make("inference", f"tiny_{family}", "fp32", "cpu", batch=1, model=f"hf:{path}"))
    assert workload.identity()["model_type"] == family
    model = workload.reference()
    pairs = workload.prunable(model)
    assert len(pairs) == 2 and all(len(p.also) == 1 for p in pairs)
    assert remove_units(pairs, 0.5) == 2 * 32
    mlp = model.model.model.layers[0].mlp
    assert mlp.gate_proj.out_features == mlp.up_proj.out_features == mlp.down_proj.in_features == 32
    assert model(workload.example_input(2)).shape == (2, 128, model.model.config.vocab_size)


@pytest.mark.slow
def test_run_file_runs_a_checkpoint_beside_a_raising_factory_and_the_report_shows_it(ckpt: Path, factories: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    """One run from a run file, in two processes: the checkpoint's case stores what identifies it and its
    quality, the raising factory's case fails with the reason while the other goes on."""
    run_file = factories / "bench.toml"
    run_file.write_text(textwrap.dedent(f"""\
        # my benchmark
        models = ["hf:{ckpt}", "py:um_factories:broken"]
        suites = ["inference"]
        devices = ["cpu"]
        processes = 2
        profile = "full"
        """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = effbench("run", "--config", str(run_file), "--profile", "quick",
                    "-k", "broken-fp32 or tiny_llama-int8_dynamic-batch", "--out", "out", cwd=factories, env=env,
                    timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    doc = json.loads((run_dir / "inference.json").read_text())
    assert doc["effbench"]["run"]["run_file"]["text"] == run_file.read_text()
    assert doc["effbench"]["run"]["profile"] == "quick"  # the flag overrides the file
    metrics = {b["params"]["workload"] + "/" + b["params"]["variant"]: b["extra_info"]["metrics"]
               for b in doc["benchmarks"]}
    assert set(metrics) == {"tiny_llama/int8_dynamic"}
    tiny = metrics["tiny_llama/int8_dynamic"]
    assert tiny["model_architecture"] == "LlamaForCausalLM" and tiny["model_parameters"] > 0
    assert tiny["model_source"] == f"hf:{ckpt}" and tiny["perplexity"] > 0
    assert tiny["quality_verdict"] in ("pass", "fail") and tiny["quality_target"] == 0.99
    assert 0.5 < tiny["quality_kept"] < 1.5 and tiny["agreement_with_reference"] > 0.5
    [failed] = [o for o in doc["effbench"]["outcomes"] if o["status"] == "failed"]
    assert failed["params"]["workload"] == "broken" and "the weights server is down" in failed["reason"]
    assert main(["report", str(run_dir), "--out", str(factories / "rep")]) == 0
    readme = (factories / "rep" / "README.md").read_text()
    assert "## Run file" in readme and "# my benchmark" in readme
    assert "## Your models" in readme and "| tiny_llama | hf:" in readme and "| LlamaForCausalLM |" in readme


def test_a_factorys_model_is_measured_and_judged(factories: Path) -> None:
    from bench_lib.suites.inference.suite import InferenceSuite

    spec = resolve_model("py:um_factories:good")
    [case] = [p.case for p in plan(["inference"], "quick", "cpu", "all", "fp32", models=(spec,))]
    result = InferenceSuite().execute(case, "quick")
    assert result.status == "ok" and result.measurement.n >= 5
    assert result.metrics["model_source"] == "py:um_factories:good"
    assert result.metrics["agreement_with_reference"] == 1.0 and result.metrics["quality_verdict"] == "pass"


def test_a_shape_a_technique_cannot_take_skips_its_case() -> None:
    from torch import nn

    from bench_lib.results.case import SkipCase
    from bench_lib.techniques.pruning import cut_units, prune_24
    from bench_lib.techniques.technique import Context
    from bench_lib.workloads.user.adapter import ModuleWorkload

    workload = ModuleWorkload(nn.Sequential(nn.Linear(32, 32), nn.LayerNorm(32), nn.Linear(32, 4)),
                              eval_data=torch.randn(4, 32))
    case = CaseSpec.make("inference", "small", "structured", "cpu", batch=1, sparsity=0.5, model="py:m:small")
    ctx = Context(case, workload, "cpu", torch.float32, 1)
    with pytest.raises(SkipCase, match="divisible by 64"):
        prune_24(workload.reference(), ctx)
    with pytest.raises(SkipCase, match="no layer pairs"):  # a norm between the Linears: no units to cut
        cut_units(workload.reference(), ctx)


def test_a_run_file_selects_and_flags_override_it(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "ckpts").mkdir()
    (tmp_path / "ckpts" / "mine").symlink_to(ckpt)
    run_file = tmp_path / "bench.toml"
    run_file.write_text('models = ["hf:ckpts/mine"]  # relative to this file\nsuites = ["inference", "training"]\n'
                        'techniques = ["int8_dynamic", "structured"]\nbatches = [2, 4]\ndevices = ["cpu"]\n')
    assert main(["list", "--config", str(run_file)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("test_")]
    assert len(lines) == 4 and all(line.startswith("test_inference[mine-") and str(tmp_path) not in line
                                   for line in lines)
    assert sorted(line.split("-")[1:3][0] + line.split("-")[2] for line in lines) == [
        "int8_dynamicbatch2", "int8_dynamicbatch4", "structuredbatch2", "structuredbatch4"]
    assert main(["list", "--config", str(run_file), "--batches", "8", "-k", "structured"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("test_")]
    assert len(lines) == 1 and "-structured-batch8-" in lines[0]
