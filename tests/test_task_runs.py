"""Task runs (data.knowledge = "slope" / "max_of_n"): the config keys, prepare's tokenizer and eval set, the task
accuracy against per-item loops, and tiny end-to-end training runs that write task eval rows."""

from __future__ import annotations

import json
import math
import os
import re

import jax.numpy as jnp
import numpy as np
import pytest

from data_gen import prepare
from data_gen.slope import SlopeTask
from data_gen.synbio_tokens import ByteTokenizer
from data_gen.task import heldout_questions
from experiments.configs import tiny
from mixlab import config as config_lib
from mixlab import evaluate, train
from mixlab.config import ConfigError, validate
from tests.test_evaluate import bigram_logits
from tests.test_train import tiny as tiny_run


def runlocal(**overrides):
    c = tiny.get_config("runlocal")
    c.sharding.num_devices = 1
    config_lib.override(c, overrides)
    return c


@pytest.mark.parametrize("knowledge", ["slope", "max_of_n"])
def test_a_task_config_is_valid(knowledge):
    c = tiny.get_config(f"runlocal,knowledge={knowledge}")  # the config files' arg string names it too
    c.sharding.num_devices = 1
    validate(c)
    assert c.data.knowledge == knowledge


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"data.knowledge": "slopes"}, "data.knowledge='slopes': must be one of ('synbio', 'slope', 'max_of_n')"),
        ({"data.max_n": 1}, "data.max_n=1: Max-over-N needs an int >= 2 numbers"),
        ({"data.task_eval_items": 0}, "data.task_eval_items=0: must be an int >= 1"),
        ({"data.task_seed": -1}, "data.task_seed=-1: must be an int >= 0"),
        (
            {"data.knowledge": "max_of_n", "data.max_n": 2, "data.task_eval_items": 5001},
            "data.task_eval_items=5001: must be <= half the 10000 questions",
        ),
        ({"data.knowledge": "slope", "data.subsample": 0.5}, "data.subsample=0.5: is a SynBio variant: must be 1.0"),
        ({"data.knowledge": "max_of_n", "data.power_law_groups": 4}, "data.power_law_groups=4: is a SynBio variant"),
        (
            {"data.knowledge": "slope", "train.exposures": 2.0},
            "train.exposures=2.0: counts passes over SynBio's people; give a data.knowledge='slope' run",
        ),
    ],
)
def test_bad_task_settings_are_one_line_config_errors(overrides, match):
    with pytest.raises(ConfigError, match=re.escape(match)) as info:
        validate(runlocal(**overrides))
    assert "\n" not in str(info.value)


def test_task_keys_may_differ_between_ensemble_members_but_the_knowledge_set_may_not():
    a = runlocal(**{"data.knowledge": "max_of_n"})
    config_lib.check_ensemble([a, runlocal(**{"data.knowledge": "max_of_n", "data.max_n": 20, "data.task_seed": 1})])
    with pytest.raises(ConfigError, match="data.knowledge"):
        config_lib.check_ensemble([a, runlocal(**{"data.knowledge": "slope"})])


@pytest.fixture()
def data_cfg(tmp_path, monkeypatch):
    monkeypatch.setattr(prepare, "TOKENIZER_PEOPLE", 100)
    c = config_lib.base_config().data
    c.update(dir=str(tmp_path / "data"), web="none", ratio=1.0, vocab_size=400, num_people=20, task_eval_items=40)
    return c


def test_prepare_a_task_run_and_leave_the_synbio_tokenizer_as_it_was(data_cfg):
    synbio = prepare.prepare(data_cfg)
    inputs = json.loads((synbio.tokenizer.path.parent / "inputs.json").read_text())
    assert set(inputs) == {"corpus", "vocab_size", "web_chars", "synbio_people", "synbio_sha256", "version"}
    assert synbio.task is None and synbio.synbio is not None
    data_cfg.knowledge = "slope"
    p = prepare.prepare(data_cfg)
    assert p.synbio is None and isinstance(p.task, SlopeTask) and p.task.tokenizer is p.tokenizer
    assert p.tokenizer.path != synbio.tokenizer.path
    task_inputs = json.loads((p.tokenizer.path.parent / "inputs.json").read_text())
    assert task_inputs["task"] == "slope" and task_inputs["task_docs"] == 2000
    assert {k: task_inputs[k] for k in inputs} == inputs
    phrase = "\n### Final Answer: k="  # the task's text is in the sample: it is merged
    assert len(p.tokenizer.encode(phrase)) < len(synbio.tokenizer.encode(phrase))
    assert len(p.eval_set.questions) == 40 and len(p.eval_set) == 80
    np.testing.assert_array_equal(p.eval_set.questions, heldout_questions(p.task, 0, 40))
    data_cfg.max_n, data_cfg.knowledge = 7, "max_of_n"
    m = prepare.prepare(data_cfg)
    assert m.task.width == 7 and m.eval_set.questions.shape == (40, 7)
    data_cfg.max_n = 9  # the tokenizer sample does not depend on N: runs that differ in N share a tokenizer
    assert prepare.prepare(data_cfg).tokenizer.path == m.tokenizer.path


def _reference(table: np.ndarray, items) -> tuple[np.ndarray, np.ndarray]:
    """Per item, by plain loops: exact match and summed loss (nats) of the value under a bigram model."""
    logp = table - np.log(np.exp(table).sum(1, keepdims=True))
    correct, loss = [], []
    for i in range(len(items)):
        seq = list(items.prompt[i, : items.prompt_len[i]]) + list(items.value[i, : items.value_len[i]])
        pl, ok, nats = items.prompt_len[i], True, 0.0
        for j in range(items.value_len[i]):
            prev, target = seq[pl - 1 + j], seq[pl + j]
            ok &= int(np.argmax(logp[prev])) == target
            nats -= logp[prev, target]
        correct.append(ok)
        loss.append(nats)
    return np.array(correct), np.array(loss)


def test_task_accuracy_matches_per_item_loops():
    """A bigram model fitted to slope documents, and made to write one item's final answer after "=", gets the
    items with that answer right and the others wrong: every number agrees with per-item loops."""
    tok = ByteTokenizer()
    task = SlopeTask(tok)
    items = task.eval_set(heldout_questions(task, 0, 60))
    tokens, _ = task.render_batch(task.draw(np.random.default_rng(0), 3000), np.zeros(3000, np.int64))
    counts = np.ones((tok.vocab_size, tok.vocab_size))
    np.add.at(counts, (tokens[:-1], tokens[1:]), 1.0)
    values = [list(items.value[i, : items.value_len[i]]) for i in range(60)]  # the final items come first
    chain = next(v for v in values if len(set(v)) == len(v))  # an answer that a bigram model can write
    for prev, nxt in zip([ord("=")] + chain[:-1], chain, strict=True):
        counts[prev, nxt] = 1e9
    table = np.log(counts).astype(np.float32)
    out = evaluate.task_accuracy(
        lambda params, t: bigram_logits(params, t), jnp.asarray(table), items, 32, bits_per_item=task.bits_per_item
    )
    correct, loss = _reference(table, items)
    final, full = items.kind == 0, items.kind == 1
    assert 0 < correct[final].sum() < final.sum()
    assert correct[final].sum() == sum(v == chain for v in values)
    assert out["acc"] == out["acc_final"] == pytest.approx(correct[final].mean())
    assert out["acc_full"] == pytest.approx(correct[full].mean())
    assert (out["n_eval"], out["n_correct"], out["n_people"]) == (60, int(correct[final].sum()), 60)
    assert out["acc_se"] == pytest.approx(np.std(correct[final], ddof=1) / math.sqrt(60))
    assert out["value_loss"] == pytest.approx(loss[final].sum() / items.value_len[final].sum(), rel=1e-5)
    assert out["value_loss_full"] == pytest.approx(loss[full].sum() / items.value_len[full].sum(), rel=1e-5)
    learned = max(0.0, task.bits_per_item - loss[final].mean() / math.log(2))
    assert out["bits_per_item"] == task.bits_per_item and out["bits_learned_per_item"] == pytest.approx(learned)
    assert np.all(correct[final] >= correct[full])  # a right worked answer has a right final answer


@pytest.mark.slow  # two tiny runs, each with its own compiles (~40 s on 2 shared cores)
@pytest.mark.parametrize("knowledge", ["slope", "max_of_n"])
def test_a_tiny_task_run_writes_task_eval_rows(data_dir, tmp_path, knowledge):
    c = tiny_run(data_dir, data__knowledge=knowledge, data__task_eval_items=50, data__seq_len=256)
    c.data.synthetic.num_docs = 400  # web validation windows of 256 tokens
    c.train.update(num_steps=4, eval_every=2)
    row = train.train_and_evaluate(c, str(tmp_path))
    rows = [json.loads(line) for line in open(tmp_path / "eval.jsonl")]
    assert [r["step"] for r in rows] == [2, 4] and rows[-1] == row
    kinds = ["final", "full"] if knowledge == "slope" else ["final"]
    for key in ("acc", "acc_se", "n_eval", "n_correct", "n_people", "value_loss", "bits_per_item", "web_loss",
                *(f"acc_{k}" for k in kinds), *(f"value_loss_{k}" for k in kinds)):  # fmt: skip
        assert key in row, key
    assert row["n_eval"] == 50 and 0 <= row["acc"] <= 1 and row["acc"] == row["acc_final"]
    assert "bits_per_param" not in row and "acc_birth_date" not in row
    d = json.load(open(tmp_path / "config.json"))["derived"]
    assert d["eval_questions"] == 50 and d["bits_per_item"] == row["bits_per_item"] and d["training_people"] == 1
    # exposures are training documents: knowledge tokens over tokens per document, give or take one document
    assert abs(row["exposures"] - row["knowledge_tokens"] / d["tokens_per_exposure"]) < 0.2 * row["exposures"] + 1
    assert os.path.isfile(tmp_path / "status.json")
