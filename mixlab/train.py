"""The training loop: one run in one workdir, from the validated config to the final eval row.

`train_and_evaluate(config, workdir)` validates the config, prepares the data, builds the stream and the sharded
state, trains (resuming from the latest checkpoint), evaluates on schedule and checkpoints. The run folder's layout
is mixlab/run_folder.py's; the command line is mixlab/main.py (`python -m mixlab.main`). Relaunching in the same
workdir resumes; a complete run returns at once; a different config is an error naming the differing keys; a workdir
that another live process holds (run_folder.lock) is an error naming that process.
"""

from __future__ import annotations

import contextlib
import json
import logging as std_logging
import os
import shutil
import sys
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from mixlab import checkpoint, evaluate, metrics, run_folder, sharding, sources, warm_start
from mixlab import config as config_lib
from mixlab.checkpoint import CheckpointError, CorruptCheckpointError, state_bytes
from mixlab.config import ConfigError
from mixlab.mixture import Prefetcher
from mixlab.model import ModelConfig, param_counts
from mixlab.step import (
    STEP_METRICS,
    DeviceStream,
    LogitsFn,
    StepSpec,
    init_ensemble_state,
    init_state,
    jit_ensemble_step,
    jit_train_step,
    member_state,
    stack_sharding,
    stack_states,
)


def _progress_logger() -> std_logging.Logger:
    """Readable progress lines on stderr, independent of absl's verbosity (which also governs orbax's chatter)."""
    logger = std_logging.getLogger("mixlab.train")
    if not logger.handlers:
        handler = std_logging.StreamHandler(sys.stderr)
        handler.setFormatter(std_logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(std_logging.INFO)
        logger.propagate = False
    return logger


logging = _progress_logger()


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or Inf."""


# ----------------------------------------------------------------------------------------------------------- run


def eval_steps(t: ml_collections.ConfigDict, num_steps: int, at_start: bool) -> frozenset[int]:
    """The completed-step counts at which a run of `num_steps` evaluates: every train.eval_every steps, the
    train.eval_per_decade log-spaced steps round(10^(k / n)) per decade, the last step, and 0 when `at_start`."""
    steps = {num_steps}
    if t.eval_every:
        steps.update(range(t.eval_every, num_steps + 1, t.eval_every))
    if t.eval_per_decade:
        top = int(np.ceil(t.eval_per_decade * np.log10(num_steps))) if num_steps > 1 else 0
        steps.update(int(round(10 ** (k / t.eval_per_decade))) for k in range(top + 1))
    if at_start:
        steps.add(0)
    return frozenset(s for s in steps if s <= num_steps)


class RunFacts:
    """What a run is, from its config and data, before anything compiles: the stream, the run length, the model's
    size and cost. `derived()` is written into config.json; `counts(step)` goes into every metrics and eval row."""

    def __init__(self, config: ml_collections.ConfigDict, prepared: Any, mesh, warm: warm_start.Source | None = None):
        d, t = config.data, config.train
        self.eos_id, vocab_size = int(prepared.tokenizer.eos_id), int(prepared.tokenizer.vocab_size)
        self.stream, self.people, knowledge = sources.mixture_stream(config, prepared)
        slots = d.global_batch * d.seq_len
        k = self.stream.knowledge_tokens_per_batch
        self.tokens_per_step, self.knowledge_per_step = slots, k
        self.web_per_step = slots - k - int(0 < k < slots)  # the knowledge->web junction slot carries no loss
        self.task = prepared.task  # a task run (data.knowledge), or None for SynBio
        self.tokens_per_exposure = knowledge.mean_doc_tokens + 1.0
        self.num_steps = config_lib.resolve_num_steps(config, k, self.tokens_per_exposure, len(self.people))
        self.model_cfg = ModelConfig.from_config(config.model.to_dict(), vocab_size, d.seq_len)
        self.params_total, self.params_non_embedding = param_counts(self.model_cfg)
        self.flops_per_token = metrics.flops_per_token(
            self.params_non_embedding, vocab_size, self.model_cfg.D, self.model_cfg.num_layers, d.seq_len
        )
        device = mesh.devices.flat[0]
        peak, self.peak_source = metrics.device_peak_flops(device, self.model_cfg.dtype)
        # CPU "devices" of one process share its cores, and the measured matmul already uses all of them.
        per_peak = jax.process_count() if device.platform == "cpu" else mesh.devices.size
        self.peak_flops = peak * per_peak if peak else None
        self.device_kind = device.device_kind
        self.num_devices = int(mesh.devices.size)
        if self.task is not None:  # every held-out question (data.task_eval_items)
            self.eval_set = prepared.eval_set
        else:
            self.eval_set = prepared.eval_set.subset(
                evaluate.select_eval_people(d.num_people, config.eval.num_people, config.eval.seed)
            )
        self.warm = warm
        self.eval_subsets = _eval_subsets(d, knowledge, self.people)
        # the guardrail compares with the step-0 web loss, and a warm start's step-0 row is its starting point
        self.eval_steps = eval_steps(t, self.num_steps, warm is not None or t.guard_web_loss_rise is not None)

    def derived(self) -> dict[str, Any]:
        """Facts computed from the config and data, written into config.json under "derived"."""
        return {
            "num_steps": self.num_steps,
            "tokens_per_step": self.tokens_per_step,
            "knowledge_tokens_per_step": self.knowledge_per_step,
            "web_tokens_per_step": self.web_per_step,
            "tokens_per_exposure": self.tokens_per_exposure,
            "training_people": len(self.people),
            "params_total": self.params_total,
            "params_non_embedding": self.params_non_embedding,
            "vocab_size": self.model_cfg.vocab_size,
            "flops_per_token": self.flops_per_token,
            "peak_flops_total": self.peak_flops,
            "peak_flops_source": self.peak_source,
            "device_kind": self.device_kind,
            "num_devices": self.num_devices,
            "num_processes": jax.process_count(),
            "eval_people": int(len(np.unique(self.eval_set.person))) if self.task is None else None,
            "bits_per_param_denominator": "params_non_embedding",
            "init_from": self.warm.describe() if self.warm else None,
            **self.task_facts(),
        }

    def task_facts(self) -> dict[str, Any]:
        """A task run's facts (none for SynBio): held-out questions, the universe, bits per item, document sizes."""
        if self.task is None:
            return {}
        return {
            "eval_questions": int(len(self.eval_set.questions)),
            "task_questions": float(self.task.universe_size),  # a float: Max-over-N's 100^N outgrows JSON readers
            "bits_per_item": self.task.bits_per_item,
            "max_doc_tokens": self.task.max_doc_tokens,
        }

    def counts(self, completed: int) -> dict[str, float]:
        """Tokens seen per source and exposures per training person after `completed` steps."""
        if self.stream.knowledge is None or not len(self.people):  # r = 0: no knowledge in the stream
            exposures = np.zeros(max(1, len(self.people)))
        else:
            exposures = self.stream.exposures(completed)[self.people]
        out = {
            "tokens": completed * self.tokens_per_step,
            "knowledge_tokens": completed * self.knowledge_per_step,
            "web_tokens": completed * self.web_per_step,
            "exposures": float(exposures.mean()),
            "exposures_min": int(exposures.min()),
        }
        for name, ids in self.eval_subsets.items():
            if name.startswith("group_"):  # a power-law group's frequency: exposures per person so far
                out[f"exposures_{name}"] = float(exposures[ids].mean())
        return out


class _Run:
    """One run of a training session (alone, or a member of an ensemble): its folder, facts, writers, checkpoints."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str, mesh, prepared: Any, facts: RunFacts):
        self.config, self.workdir, self.mesh = config, workdir, mesh
        self.prepared = prepared
        self.facts = facts
        config.train.num_steps = self.facts.num_steps  # `config` is train_ensemble's private copy
        self.resolved = config_lib.as_dict(config)  # what config.json and every checkpoint record
        self.is_writer = jax.process_index() == 0
        self.timers = metrics.Timers()
        t = config.train
        self.metrics_writer = metrics.MetricsWriter(workdir, run_folder.METRICS, t.tensorboard, self.is_writer)
        self.eval_writer = metrics.MetricsWriter(workdir, run_folder.EVAL, t.tensorboard, self.is_writer)
        self.ckpt = checkpoint.Checkpointer(
            os.path.join(workdir, run_folder.CHECKPOINT_DIR), t.keep_checkpoints, t.milestone_every, self.resolved
        )
        self.logits_fn: LogitsFn | None = None
        self.last_eval: dict[str, Any] = {}
        self.error: str | None = None  # set when this member of an ensemble failed and was left behind
        self.wall_before = 0.0  # wall time of earlier sessions of this run (from the checkpoint)
        self.t_start = time.perf_counter()
        rows = run_folder.read_eval_rows(workdir)
        self.web_loss_start = next((r["web_loss"] for r in reversed(rows) if r["step"] == 0), None)
        # a run that stopped early (train.stop_at_acc, train.guard_web_loss_rise) and checkpointed there is done
        stopped = [r for r in rows if r.get("stopped")]
        done = bool(stopped) and stopped[-1]["step"] in self.ckpt.all_steps()
        self.stop_reason: str | None = stopped[-1]["stopped"] if done else None
        self.stopped_step: int | None = stopped[-1]["step"] if done else None
        if done:
            self.last_eval = stopped[-1]

    @property
    def active(self) -> bool:
        """Still training: neither failed nor stopped early."""
        return self.error is None and self.stop_reason is None

    def wall_time(self) -> float:
        if self.stop_reason is not None:  # frozen where the run stopped
            return float(self.last_eval["wall_time_s"])
        return self.wall_before + time.perf_counter() - self.t_start

    def close(self) -> None:
        self.ckpt.close()
        self.metrics_writer.close()
        self.eval_writer.close()

    def result(self, end: int) -> dict[str, Any]:
        """The final eval row when the run is complete (or stopped early), else a marker of where this session
        stopped."""
        if self.stop_reason is not None:
            return self.last_eval
        if end < self.facts.num_steps:
            return {"step": end, "stopped_early": True}
        return self.last_eval or _last_eval_row(self.workdir)

    def evaluate(self, params: Any, completed: int) -> dict[str, Any]:
        """Memorization on the eval subset and web validation loss; appends a row to eval.jsonl."""
        cfg, d = self.config.eval, self.config.data
        t0 = time.perf_counter()
        with self.timers.phase("eval"):
            mem = self.knowledge_eval(params)
            web = self.prepared.web_val
            web_loss = (
                evaluate.web_loss(
                    self.logits_fn,
                    params,
                    web,
                    d.seq_len,
                    cfg.web_batches,
                    d.global_batch // self.config.optim.grad_accum,
                    eos_id=self.facts.eos_id,
                )
                if web is not None
                else float("nan")
            )
        row = {
            "step": completed,
            **self.facts.counts(completed),
            **mem,
            "web_loss": web_loss,
            "params_total": self.facts.params_total,
            "params_non_embedding": self.facts.params_non_embedding,
            "eval_time_s": time.perf_counter() - t0,
            "wall_time_s": self.wall_time(),
        }
        if completed == 0:
            self.web_loss_start = web_loss
        reason = self._stop_reason(row) if completed < self.facts.num_steps else None
        if reason is not None:
            row["stopped"] = reason
            self.stop_reason, self.stopped_step = reason, completed
        self.eval_writer.write(row)
        self.last_eval = row
        logging.info(
            "eval step %d: acc %.4f ± %.4f, value loss %.3f, bits/param %.3f, web loss %.3f (%.1f s)",
            completed,
            row["acc"],
            row["acc_se"],
            row["value_loss"],
            row.get("bits_per_param", float("nan")),
            web_loss,
            row["eval_time_s"],
        )
        return row

    def knowledge_eval(self, params: Any) -> dict[str, Any]:
        """The knowledge set's eval columns: SynBio memorization with bits_per_param, or a task's accuracy."""
        cfg, task = self.config.eval, self.facts.task
        if task is not None:
            acc = evaluate.task_accuracy(
                self.logits_fn, params, self.facts.eval_set, cfg.batch_size, bits_per_item=task.bits_per_item
            )
            return {**acc, "acc_chance": task.chance_acc}
        mem = evaluate.memorization(
            self.logits_fn,
            params,
            self.facts.eval_set,
            cfg.batch_size,
            pool_sizes=self.prepared.synbio.population.pool_sizes,
            population_size=self.config.data.num_people,
            subsets=self.facts.eval_subsets,
        )
        return {**mem, "bits_per_param": mem["bits_stored_total"] / self.facts.params_non_embedding}

    def _stop_reason(self, row: dict[str, Any]) -> str | None:
        """Why the run stops at this eval (train.stop_at_acc reached, or the web loss above its guardrail), or None."""
        t, step = self.config.train, row["step"]
        if t.stop_at_acc is not None and row["acc"] >= t.stop_at_acc:
            return f"target: acc {row['acc']:.4f} >= train.stop_at_acc={t.stop_at_acc} at step {step}"
        rise, start = t.guard_web_loss_rise, self.web_loss_start
        if rise is not None and start is not None and row["web_loss"] > start + rise:
            return (
                f"guardrail: web loss {row['web_loss']:.4f} > {start:.4f} (step 0) + "
                f"train.guard_web_loss_rise={rise} at step {step}"
            )
        return None


def _eval_subsets(d: ml_collections.ConfigDict, knowledge: Any, people: np.ndarray) -> dict[str, np.ndarray]:
    """The people whose accuracy is reported apart: "kept" (a subsample's training people), "group_<k>" (power-law
    groups, whose people are contiguous ids)."""
    if d.power_law_groups > 0:
        size = knowledge.groups.group_size
        return {f"group_{k}": np.arange(k * size, (k + 1) * size) for k in range(d.power_law_groups)}
    return {"kept": people} if d.subsample < 1.0 else {}


def _common_start(runs: list[_Run]) -> int:
    """The step every training run resumes from: the newest checkpoint all of them hold (0 if there is none)."""
    steps = [set(run.ckpt.all_steps()) for run in runs if run.active]
    common = set.intersection(*steps) if steps else set()
    return max(common) if common else 0


def _train(runs: list[_Run], mesh, rules, stop_after: int | None) -> None:
    """Train runs of one StepSpec together to num_steps (or stop_after), from their common latest checkpoint.

    One run trains with the plain step; K > 1 runs with the ensemble step (mixlab/step.py), each from its own seed,
    stream, checkpoints and folder. A member whose loss turns NaN/Inf is marked failed and left out of logging,
    evaluation and checkpoints from then on; the others go on (alone, the error is raised).
    """
    config, facts = runs[0].config, runs[0].facts
    t = config.train
    start = _common_start(runs)
    end = facts.num_steps if stop_after is None else min(facts.num_steps, stop_after)
    if start >= end or not any(run.active for run in runs):
        return
    spec = StepSpec.create(facts.model_cfg, config.optim, facts.num_steps, mesh, rules)
    batch_sharding = sharding.batch_sharding(mesh, rules)
    if len(runs) == 1:
        state, shardings = init_state(spec, mesh, rules, config.seed)
        step_fn = jit_train_step(shardings, batch_sharding, mesh)
    else:
        state, shardings = init_ensemble_state(spec, mesh, rules, [run.config.seed for run in runs])
        step_fn, batch_sharding = jit_ensemble_step(shardings, batch_sharding, mesh), stack_sharding(batch_sharding)
    member = _member_fn(len(runs), shardings)
    checkpoint_bytes = state_bytes(state) // len(runs)
    for run in runs:
        _check_free_space(run, checkpoint_bytes)
    if start:
        state, start = _restore_newest(runs, state, shardings)
        logging.info("resumed %s at step %d", ", ".join(run.workdir for run in runs), start)
    elif facts.warm is not None:
        state = _warm_start(runs, state, shardings)
        logging.info("warm start from %s", facts.warm.describe()["checkpoint"])
    # A member may hold checkpoints past the common step (the others were killed before writing theirs): its
    # replayed steps reach those states again bit for bit, so they are kept rather than written twice.
    ahead = [{s for s in run.ckpt.all_steps() if s > start} for run in runs]
    logits_fn = LogitsFn(spec.graphdef, mesh if jax.process_count() > 1 else None)
    prefetch = Prefetcher(
        DeviceStream([run.facts.stream for run in runs], batch_sharding),
        start,
        jax.process_index(),
        jax.process_count(),
    )
    try:
        batch = next(prefetch)
        t0 = time.perf_counter()
        compiled = step_fn.lower(spec, state, batch).compile()
        for run in runs:
            run.timers.add("compile", time.perf_counter() - t0)
            run.logits_fn = logits_fn
        logging.info("compiled the train step of %d run(s) in %.2f s", len(runs), time.perf_counter() - t0)
        logs = [_StepLog(run, prefetch) for run in runs]
        if start == 0 and 0 in facts.eval_steps:
            for k, run in enumerate(runs):
                if run.active:
                    run.evaluate(member(state, k)["params"], 0)
        pending: tuple[int, jax.Array] | None = None
        for step in range(start, end):
            if not any(run.active for run in runs):
                break
            if step > start:
                batch = next(prefetch)
            state, step_metrics = compiled(state, batch)
            if pending is not None:
                _add(runs, logs, *pending)  # step t-1, read while step t runs
            pending = (step, step_metrics)
            done = step + 1
            at_eval = done in facts.eval_steps
            at_ckpt = done == end or (t.checkpoint_every and done % t.checkpoint_every == 0)
            if done % t.log_every == 0 or at_eval or at_ckpt:
                _add(runs, logs, *pending)
                pending = None
                for run, log in zip(runs, logs, strict=True):
                    if run.active:
                        log.write(done)
            t0 = time.perf_counter()
            for k, run in enumerate(runs):
                if not run.active:
                    continue
                if at_eval:
                    run.evaluate(member(state, k)["params"], done)
                if done in ahead[k]:
                    logging.info("%s: checkpoint %d is already there (written before the restart); kept", run.workdir,
                                 done)  # fmt: skip
                elif at_ckpt or not run.active:  # a run that stops early keeps its final state
                    with run.timers.phase("checkpoint"):
                        meta = {"timers": run.timers.totals, "wall_time_s": run.wall_time()}
                        run.ckpt.save(done, member(state, k), meta)
            for log in logs:
                log.paused += time.perf_counter() - t0
    finally:
        prefetch.close()


def _check_free_space(run: _Run, checkpoint_bytes: int) -> None:
    """CheckpointError before training unless the run folder's disk holds keep_checkpoints + 1 checkpoints (the
    newest is written before the oldest is removed) plus 10%."""
    t = run.config.train
    if jax.process_index() != 0:
        return
    need = int(1.1 * (t.keep_checkpoints + 1) * checkpoint_bytes)
    free = shutil.disk_usage(run.workdir).free
    if free < need:
        raise CheckpointError(
            f"{run.workdir}: {free / 2**20:.1f} MiB free, but {t.keep_checkpoints + 1} checkpoints of "
            f"{checkpoint_bytes / 2**20:.1f} MiB need {need / 2**20:.1f} MiB; free space or lower "
            "train.keep_checkpoints"
        )


def _member_fn(K: int, shardings: dict):
    """member(state, k): the state itself for one run; member k's slice, sharded as one run's, for an ensemble."""
    if K == 1:
        return lambda state, k: state
    return jax.jit(member_state, static_argnums=1, out_shardings=shardings)


def _restore_newest(runs: list[_Run], state: Any, shardings: dict) -> tuple[Any, int]:
    """(state, step) from the newest checkpoint step that every run can read; an unreadable checkpoint is moved
    aside with a warning and the next older one tried. CheckpointError when none is left: never a silent restart."""
    while True:
        step = _common_start(runs)
        if not step:
            folders = ", ".join(run.ckpt.directory for run in runs)
            raise CheckpointError(f"no readable checkpoint is left in {folders} (unreadable ones were moved aside)")
        try:
            return _restore(runs, state, shardings, step), step
        except CorruptCheckpointError:
            continue


def _warm_start(runs: list[_Run], state: Any, shardings: dict) -> Any:
    """`state` with the parameters of the warm-start source (every member of an ensemble gets the same ones)."""
    source = runs[0].facts.warm
    if len(runs) == 1:
        return {**state, "params": warm_start.load_params(source, state["params"])}
    member_params = jax.tree_util.tree_map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape[1:], x.dtype, sharding=s), state["params"], shardings["params"]
    )
    params = warm_start.load_params(source, member_params)
    return {**state, "params": stack_states([params] * len(runs), shardings["params"])}


def _restore(runs: list[_Run], state: Any, shardings: dict, step: int) -> Any:
    """Every training run's checkpoint at `step` (with its timers and wall time), stacked for an ensemble; a run that
    stopped early is restored at its final step (its slot is carried along, not trained on)."""
    if len(runs) == 1:
        abstract = state
    else:
        abstract = jax.tree_util.tree_map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape[1:], x.dtype, sharding=s), state, shardings
        )
    states = []
    for run in runs:
        restored, meta = run.ckpt.restore(abstract, step if run.active else run.stopped_step)
        run.timers = metrics.Timers(meta["timers"])
        run.wall_before = float(meta["wall_time_s"])
        states.append(restored)
    return states[0] if len(runs) == 1 else stack_states(states, shardings)


def _add(runs: list[_Run], logs: list[_StepLog], step: int, step_metrics: jax.Array) -> None:
    """Hand each run its row of the step's metrics; a failing member of an ensemble is recorded and left behind."""
    values = np.asarray(step_metrics).reshape(len(runs), -1)
    for run, log, row in zip(runs, logs, values, strict=True):
        if not run.active:
            continue
        try:
            log.add(step, row)
        except NonFiniteLossError as e:
            if len(runs) == 1:
                raise
            run.error = f"{type(e).__name__}: {e}"
            logging.info("%s failed, the ensemble goes on without it: %s", run.workdir, e)
            if all(r.error is not None for r in runs):
                raise


class _StepLog:
    """Aggregates per-step metric vectors between log points and writes one metrics.jsonl row per log point."""

    def __init__(self, run: _Run, prefetch: Prefetcher):
        self.run, self.prefetch = run, prefetch
        self.sums = np.zeros(len(STEP_METRICS))
        self.steps = 0
        self.last = np.zeros(len(STEP_METRICS))
        self.t0 = time.perf_counter()
        self.wait0 = prefetch.wait_seconds
        self.paused = 0.0  # eval/checkpoint seconds inside the interval, excluded from throughput

    def add(self, step: int, values: np.ndarray) -> None:
        """Record step `step`'s metrics; on a NaN/Inf loss write the row so far, then raise NonFiniteLossError."""
        self.sums += values
        self.steps += 1
        self.last = values
        if not np.all(np.isfinite(values[:3])):
            self.write(step + 1)
            loss = values[0] / max(values[3], 1.0)
            raise NonFiniteLossError(
                f"training loss is {loss} at step {step + 1}; metrics so far are in {self.run.workdir}/metrics.jsonl"
            )

    def write(self, completed: int) -> None:
        """One metrics row for the steps since the last row; `completed` = steps done so far."""
        if not self.steps:
            return
        r, now = self.run, time.perf_counter()
        wall = max(now - self.t0 - self.paused, 1e-9)
        s = dict(zip(STEP_METRICS, self.sums, strict=True))
        k_count, w_count = s["knowledge_count"], s["count"] - s["knowledge_count"]
        tokens_per_s = self.steps * r.facts.tokens_per_step / wall
        wait = self.prefetch.wait_seconds - self.wait0
        r.timers.add("train", wall)  # the loop's wall time, data waits included
        r.timers.add("data_wait", wait)
        row = {
            "step": completed,
            "loss": s["loss_sum"] / max(s["count"], 1.0),
            "loss_knowledge": s["knowledge_loss_sum"] / k_count if k_count else None,
            "loss_web": s["web_loss_sum"] / w_count if w_count else None,
            "grad_norm": float(self.last[STEP_METRICS.index("grad_norm")]),
            "lr": float(self.last[STEP_METRICS.index("lr")]),
            "steps_in_row": self.steps,
            "tokens_per_s": tokens_per_s,
            "mfu": tokens_per_s * r.facts.flops_per_token / r.facts.peak_flops if r.facts.peak_flops else None,
            "data_wait_share": wait / wall,
            **r.facts.counts(completed),
            **r.timers.as_dict(),
            "wall_time_s": r.wall_time(),
        }
        r.metrics_writer.write(row)
        logging.info(
            "step %d/%d loss %.4f (knowledge %s, web %s) | %.0f tok/s, MFU %s, data wait %.1f%% | exposures %.2f",
            completed,
            r.facts.num_steps,
            row["loss"],
            "n/a" if row["loss_knowledge"] is None else f"{row['loss_knowledge']:.4f}",
            "n/a" if row["loss_web"] is None else f"{row['loss_web']:.4f}",
            tokens_per_s,
            "n/a" if row["mfu"] is None else f"{row['mfu']:.2%}",
            100 * row["data_wait_share"],
            row["exposures"],
        )
        self.sums[:] = 0
        self.steps = 0
        self.t0, self.wait0, self.paused = now, self.prefetch.wait_seconds, 0.0


# ------------------------------------------------------------------------------------------------------ public


def _prepare(config: ml_collections.ConfigDict) -> Any:
    """data_gen.prepare.prepare, run by process 0 first when there are several (they may share data.dir).

    The others wait for it at a collective, bounded by --distributed_timeout_s (mixlab.distributed): a first
    collective, which all reach together, sets up gloo's group, whose rendezvous would give up after a fixed 30 s.
    A damaged token store under data.dir, or a web corpus that cannot be built (data_gen.debian_docs.
    CorpusUnavailable: no apt, a damaged shipped default corpus), is a ConfigError (one line from mixlab.main)."""
    from jax.experimental import multihost_utils

    from data_gen.debian_docs import CorpusUnavailable
    from data_gen.prepare import prepare
    from data_gen.web import StoreIntegrityError

    try:
        if jax.process_count() == 1:
            return prepare(config.data)
        multihost_utils.sync_global_devices("mixlab: preparing data")
        if jax.process_index() == 0:
            prepared = prepare(config.data)
        multihost_utils.sync_global_devices("mixlab: data prepared")
        return prepared if jax.process_index() == 0 else prepare(config.data)
    except StoreIntegrityError as e:
        raise ConfigError(f"data.dir={config.data.dir!r}: {e}") from None
    except CorpusUnavailable as e:
        raise ConfigError(f"data.web={config.data.web!r}: {e}") from None


def _last_eval_row(workdir: str) -> dict:
    rows = run_folder.read_eval_rows(workdir)
    if not rows:
        raise RuntimeError(f"{workdir}/{run_folder.STATUS_FILE} says complete but its eval rows are empty")
    return rows[-1]


def check_workdir(workdir: str) -> None:
    """ConfigError unless `workdir` is a folder, or can be created as one, that this process may write."""
    path = os.path.abspath(workdir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"workdir {workdir!r} exists and is not a folder")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"workdir {workdir!r}: {existing!r} is not a folder this process can write in")


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, *, stop_after: int | None = None
) -> dict[str, Any]:
    """Train and evaluate one run in `workdir`; returns the final eval row.

    The config is validated (mixlab.config.validate) before anything is built or written. A complete run returns
    its final eval row without training. `stop_after` ends the session after that many steps (checkpointed, status
    stays "running"), e.g. for time-sliced jobs; relaunching continues the run.
    """
    return train_ensemble([config], [workdir], stop_after=stop_after)[0]


def train_ensemble(
    configs: list[ml_collections.ConfigDict], workdirs: list[str], *, stop_after: int | None = None
) -> list[dict[str, Any]]:
    """Train K runs that share one StepSpec in one program (mixlab/step.py's ensemble step); one row per run.

    The configs may differ only in mixlab.config.MEMBER_KEYS (seed, ratio, knowledge set, eval subset) and must
    resolve to the same number of steps; each run has its own folder, written as if it had trained alone. Every config
    is validated, and every folder checked, before anything is built or written; then each folder is created and
    locked (run_folder.lock: one writer per folder, a folder another process holds is a ConfigError naming it) before
    it is read. Complete runs are left out.
    A failed member gets status "failed" and its error; the others go on. The row of a failed member is
    {"step": ..., "failed": error}.
    """
    if not configs or len(configs) != len(workdirs):
        raise ValueError(f"need one workdir per config, got {len(configs)} configs and {len(workdirs)} workdirs")
    if len(set(map(os.path.abspath, workdirs))) < len(workdirs):
        raise ConfigError(f"two members of an ensemble share a workdir: {workdirs}")
    for workdir in workdirs:
        check_workdir(workdir)
    configs = [ml_collections.ConfigDict(c.to_dict()) for c in configs]  # private, unlocked, placeholders resolved
    checked = [config_lib.validate(c) for c in configs]
    config_lib.check_ensemble(configs)
    warm = warm_start.resolve(configs[0])  # members share train.init_from (not a MEMBER_KEY)
    for workdir in workdirs if warm is not None else []:
        if os.path.commonpath([os.path.abspath(workdir), warm.directory]) == os.path.abspath(workdir):
            raise ConfigError(f"train.init_from={warm.directory!r} lies inside the run folder {workdir!r}")
    mesh, rules = checked[0]
    results: dict[int, dict[str, Any]] = {}
    todo = []
    created: list[str] = []  # folders this call made: removed again if their run never starts
    with contextlib.ExitStack() as locks:
        try:
            for workdir in workdirs:
                if _claim(workdir, locks):
                    created.append(workdir)
            for i, (config, workdir) in enumerate(zip(configs, workdirs, strict=True)):
                saved = run_folder.read_config(workdir)
                if saved is None:  # a folder without config.json may still hold checkpoints of another run
                    saved = checkpoint.saved_config(os.path.join(workdir, run_folder.CHECKPOINT_DIR))
                if saved is not None:
                    config_lib.check_same_run(saved, config_lib.as_dict(config), f"run folder {workdir}")
                    if run_folder.is_complete(workdir):
                        logging.info("%s is complete; nothing to do", workdir)
                        results[i] = _last_eval_row(workdir)
                        continue
                todo.append(i)
            if todo:
                todo_configs, todo_dirs = [configs[i] for i in todo], [workdirs[i] for i in todo]
                rows = _train_new(todo_configs, todo_dirs, mesh, rules, stop_after, warm)
                results.update(zip(todo, rows, strict=True))
        except BaseException:
            for workdir in created:
                _remove_if_unstarted(workdir)
            raise
    return [results[i] for i in range(len(configs))]


def _claim(workdir: str, locks: contextlib.ExitStack) -> bool:
    """Create the run folder and, on process 0 (its only writer), hold its lock until `locks` closes; ConfigError
    naming the holder when another live process has it (nothing is written into the folder then). True if this
    call created the folder."""
    created = not os.path.isdir(workdir)
    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"workdir {workdir!r}: cannot create it: {e.strerror}") from None
    if jax.process_index() == 0:
        try:
            locks.enter_context(run_folder.lock(workdir))
        except run_folder.RunFolderLocked as e:
            raise ConfigError(str(e)) from None
    return created


def _remove_if_unstarted(workdir: str) -> None:
    """Remove a folder this process created if it holds nothing but its lock file (its run never started)."""
    if set(os.listdir(workdir)) <= {run_folder.LOCK_FILE}:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(workdir, run_folder.LOCK_FILE))
        os.rmdir(workdir)


def _train_new(
    configs: list, workdirs: list[str], mesh, rules, stop_after: int | None, warm: warm_start.Source | None
) -> list[dict[str, Any]]:
    """train_ensemble for the runs that are not complete (folders created and locked): statuses, data, training,
    results."""
    is_writer = jax.process_index() == 0
    t0 = time.perf_counter()

    def status(workdir: str, value: str, error: str | None, wall: float | None, stopped: str | None = None) -> None:
        if is_writer:
            wall = time.perf_counter() - t0 if wall is None else wall
            run_folder.write_status(workdir, value, error, wall, stopped)

    prepared: dict[str, Any] = {}  # data and run facts before any status: a run that cannot start leaves nothing
    facts = []
    for config in configs:
        key = json.dumps(config.data.to_dict(), sort_keys=True, default=str)
        if key not in prepared:
            prepared[key] = _prepare(config)
        facts.append((prepared[key], RunFacts(config, prepared[key], mesh, warm)))
    num_steps = {f.num_steps for _, f in facts}
    if len(num_steps) > 1:
        raise ConfigError(f"the members of an ensemble resolve to different numbers of steps: {sorted(num_steps)}")
    for workdir in workdirs:
        status(workdir, "running", None, None)
    runs: list[_Run] = []
    try:
        for config, workdir, (data, run_facts) in zip(configs, workdirs, facts, strict=True):
            runs.append(_Run(config, workdir, mesh, data, run_facts))
        if is_writer:
            for run in runs:
                config_json = os.path.join(run.workdir, run_folder.CONFIG_FILE)
                run_folder.write_json(config_json, {**run.resolved, "derived": run.facts.derived()})
        _train(runs, mesh, rules, stop_after)
    except BaseException as e:
        for i, workdir in enumerate(workdirs):
            error = runs[i].error if i < len(runs) and runs[i].error else f"{type(e).__name__}: {e}"
            status(workdir, "failed", error, runs[i].wall_time() if i < len(runs) else None)
        raise
    finally:
        for run in runs:
            run.close()
    rows = []
    end = runs[0].facts.num_steps if stop_after is None else min(runs[0].facts.num_steps, stop_after)
    for run in runs:
        if run.error is not None:
            status(run.workdir, "failed", run.error, run.wall_time())
            rows.append({"step": end, "failed": run.error})
            continue
        row = run.result(end)
        value = "complete" if "stopped_early" not in row else "running"
        status(run.workdir, value, None, run.wall_time(), run.stop_reason)
        rows.append(row)
    return rows


if __name__ == "__main__":  # `python -m mixlab.train` is kept as another name of the entry point, mixlab/main.py
    from mixlab.main import run

    run()
