"""The training suite on a user's causal LM (issue 28, item 5): the task's data split, what a factory's Workload
must be to train, and a run of `effbench run --model hf:DIR --suite training` beside a factory that raises."""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path

import pytest
import torch
from conftest import REPO, effbench, user_module

from bench_lib.results.case import CaseSpec, SkipCase
from bench_lib.suites.distributed.user_task import causal_lm_task

FACTORIES = '''
import torch
from torch import nn
from bench_lib.workloads.user.adapter import ModuleWorkload

class Bigram(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 50)

    def forward(self, ids):
        return self.emb(ids)

def bigram():
    torch.manual_seed(0)
    rows = torch.randint(0, 50, (40, 9))
    return ModuleWorkload(Bigram(), eval_data=rows[30:], train_data=rows[:30])

def mlp():
    return ModuleWorkload(nn.Sequential(nn.Linear(16, 4)), eval_data=torch.randn(8, 16))

def broken():
    raise RuntimeError("the weights server is down")
'''


@pytest.fixture
def factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    user_module(tmp_path, monkeypatch, "ut_factories", FACTORIES)
    return tmp_path


def _case(model: str, **params: str) -> CaseSpec:
    return CaseSpec.make("training", "m", "sync", "cpu", backend="gloo", world_size=2, model=model, **params)


def test_a_checkpoint_trains_on_the_first_part_of_its_text_and_is_judged_on_the_rest(ckpt: Path,
                                                                                      tmp_path: Path) -> None:
    """Words of one alphabet before the held-out cut, of another after it: no training batch sees the held-out
    part; each rank's generator draws its own batches, the same ones for the same seed."""
    text = tmp_path / "mine.txt"
    text.write_text("alpha " * 1800 + "omega " * 200)  # the cut (last 10%) falls between them
    task, steps = causal_lm_task(_case(f"hf:{ckpt}", eval_text=str(text)), "quick")
    assert steps > 0 and task.seq == 128 and task.tokens_per_sample == 128
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ckpt)

    def letters(ids: torch.Tensor) -> set[str]:
        return set(tokenizer.decode(ids.reshape(-1).tolist()))

    drawn = [task.sample(torch.Generator().manual_seed(1000 + rank), "cpu") for rank in (0, 1)]
    for x, y in drawn:
        assert x.shape == y.shape == (task.batch, 128) and torch.equal(x[:, 1:], y[:, :-1])
        assert letters(torch.cat([x, y])) <= set("alpha ")
    assert not torch.equal(drawn[0][0], drawn[1][0])
    assert torch.equal(task.sample(torch.Generator().manual_seed(1000), "cpu")[0], drawn[0][0])
    held = task.eval_batches()
    assert held and all(letters(torch.cat([x, y])) <= set("omega ") for x, y in held)
    model = task.model()
    assert model.training
    metrics = task.evaluate(model, "cpu", autocast=False)
    assert math.isfinite(metrics["eval_loss"]) and 0 <= metrics["eval_accuracy"] <= 1
    identity = task.identity()
    assert identity["model_architecture"] == "LlamaForCausalLM" and identity["eval_text_source"] == str(text)


def test_a_factory_trains_when_its_workload_is_a_causal_lm_over_token_ids(factories: Path) -> None:
    task, _ = causal_lm_task(_case("py:ut_factories:bigram"), "quick")
    x, y = task.sample(torch.Generator().manual_seed(0), "cpu")
    assert x.shape == (task.batch, 8) and x.dtype == torch.long
    assert math.isfinite(float(task.loss(task.model()(x), y).detach()))
    assert task.identity()["model_source"] == "py:ut_factories:bigram"
    with pytest.raises(SkipCase, match=r"trains a causal LM over token ids, and train_inputs\(\) gives torch.float32"):
        causal_lm_task(_case("py:ut_factories:mlp"), "quick")


def _ours(marker: str) -> list[int]:
    """Processes still running (or unreaped) with `marker` in their environment."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker.encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_the_training_suite_trains_a_checkpoint_beside_a_factory_that_raises(ckpt: Path, factories: Path) -> None:
    """Two launches of 2 ranks: the checkpoint's sync and async_stale cases measured with a finite held-out loss,
    the raising factory's cases failed with its error, ids naming the model, no process left behind."""
    from pydoc_data.topics import topics

    text = factories / "text.txt"  # a short text, so that each rank tokenizes it quickly
    text.write_text("\n\n".join(topics[key] for key in sorted(topics))[:40_000])
    marker = f"EFFBENCH_TEST_{uuid.uuid4().hex}"
    env = {**os.environ, marker: "1", "EFFBENCH_WORLD_SIZE": "2",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = effbench("run", "--model", f"hf:{ckpt}", "--model", "py:ut_factories:broken", "--suite", "training",
                    "--profile", "quick", "--device", "cpu", "--backend", "gloo", "--eval-text", str(text),
                    "-k", "sync-backend or async_stale", "--out", "out", cwd=factories, env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert not _ours(marker)
    doc = json.loads((Path(proc.stdout.strip().splitlines()[-1]) / "training.json").read_text())
    by_variant = {b["params"]["variant"]: b for b in doc["benchmarks"]}
    assert set(by_variant) == {"sync", "async_stale"}
    for bench in by_variant.values():
        assert bench["params"]["model"] == f"hf:{ckpt}" and "tiny_llama-" in bench["name"]
        assert str(ckpt) not in bench["name"]
        metrics = bench["extra_info"]["metrics"]
        assert math.isfinite(metrics["eval_loss"]) and metrics["eval_accuracy_metric"] == "next-token top-1"
        assert metrics["samples_per_s"] > 0 and metrics["tokens_per_s"] == 128 * metrics["samples_per_s"]
        assert metrics["model_architecture"] == "LlamaForCausalLM" and metrics["model_config_sha256"]
        assert metrics["target_loss"] is not None and "time_to_target_s" in metrics
    assert by_variant["async_stale"]["extra_info"]["metrics"]["speedup_over_sync"] > 0
    failed = [o for o in doc["effbench"]["outcomes"] if o["status"] == "failed"]
    assert {o["params"]["variant"] for o in failed} == {"sync", "async_stale"}
    assert all(o["params"]["workload"] == "broken" and "the weights server is down" in o["reason"] for o in failed)


def test_two_models_of_one_name_are_refused(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from bench_lib.cli import main

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / ckpt.name).symlink_to(ckpt)
    assert main(["list", "--suite", "training", "--model", f"hf:{ckpt}", "--model",
                 f"hf:{tmp_path / 'other' / ckpt.name}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "both named 'tiny_llama'" in err
