"""The knowledge sets a run can train on (config.data.knowledge), and the tasks' construction from config.data.

"synbio" is data_gen.synbio; the tasks are data_gen.slope.SlopeTask and data_gen.max_of_n.MaxOfNTask
(data_gen/task.py). Config keys of the tasks: data.max_n (N of Max-over-N), data.task_eval_items (held-out
questions), data.task_seed (which held-out set).
"""

from __future__ import annotations

import numpy as np

from data_gen import max_of_n, slope
from data_gen.max_of_n import MaxOfNTask
from data_gen.slope import SlopeTask
from data_gen.synbio_tokens import ByteTokenizer, TextEncoder
from data_gen.task import Task, TaskEvalSet, heldout_questions

KNOWLEDGE_SETS = ("synbio", "slope", "max_of_n")
TASKS = {"slope": SlopeTask, "max_of_n": MaxOfNTask}
TOKENIZER_TASK_DOCS = 2000  # task documents in a task run's tokenizer sample
TOKENIZER_MAX_N = 30  # the sample's N, whatever data.max_n is, so runs that differ in N share one tokenizer
_SAMPLE_SEED = 0


def knowledge(data_cfg) -> str:
    return str(data_cfg.get("knowledge", "synbio"))


def make_task(data_cfg, tokenizer: TextEncoder, max_n: int | None = None) -> Task | None:
    """The task config.data.knowledge names, rendered with `tokenizer`; None for SynBio."""
    name = knowledge(data_cfg)
    if name == "synbio":
        return None
    if name == "max_of_n":
        return MaxOfNTask(tokenizer, int(data_cfg.max_n) if max_n is None else max_n)
    return TASKS[name](tokenizer)


def universe_size(data_cfg) -> int:
    """Number of distinct questions of the task of config.data (no tokenizer needed)."""
    name = knowledge(data_cfg)
    if name == "max_of_n":
        return max_of_n.num_questions(int(data_cfg.max_n))
    return slope.num_questions() if name == "slope" else 0


def task_eval_set(data_cfg, task: Task) -> TaskEvalSet:
    """The held-out items: data.task_eval_items questions of the set data.task_seed."""
    return task.eval_set(heldout_questions(task, int(data_cfg.task_seed), int(data_cfg.task_eval_items)))


def tokenizer_sample(data_cfg) -> list[str]:
    """Texts of TOKENIZER_TASK_DOCS documents of the task (fixed seed, N = TOKENIZER_MAX_N); [] for SynBio."""
    task = make_task(data_cfg, ByteTokenizer(), TOKENIZER_MAX_N)
    if task is None:
        return []
    rng = np.random.default_rng(_SAMPLE_SEED)
    templates = rng.integers(0, task.num_templates, TOKENIZER_TASK_DOCS)
    tokens, offsets = task.render_batch(task.draw(rng, TOKENIZER_TASK_DOCS), templates)
    raw = tokens.astype(np.uint8).tobytes()
    return [raw[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
