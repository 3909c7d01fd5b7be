"""The training loop: one run in one workdir, from the validated config to the final eval row.

`train_and_evaluate(config, workdir)` validates the config, prepares the data, builds the stream and the sharded
state, trains (resuming from the latest checkpoint), evaluates on schedule and checkpoints. The run folder's layout
is mixlab/run_folder.py's; the command line is mixlab/main.py (`python -m mixlab.main`). Relaunching in the same
workdir resumes; a complete run returns at once; a different config is an error naming the differing keys.
"""

from __future__ import annotations

import logging as std_logging
import os
import sys
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from mixlab import checkpoint, evaluate, metrics, run_folder, sharding, sources
from mixlab import config as config_lib
from mixlab.mixture import Prefetcher
from mixlab.model import ModelConfig, param_counts
from mixlab.step import STEP_METRICS, DeviceStream, LogitsFn, StepSpec, init_state, jit_train_step


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


class RunFacts:
    """What a run is, from its config and data, before anything compiles: the stream, the run length, the model's
    size and cost. `derived()` is written into config.json; `counts(step)` goes into every metrics and eval row."""

    def __init__(self, config: ml_collections.ConfigDict, prepared: Any, mesh):
        d = config.data
        self.eos_id, vocab_size = int(prepared.tokenizer.eos_id), int(prepared.tokenizer.vocab_size)
        self.stream, self.people = sources.mixture_stream(config, prepared)
        slots = d.global_batch * d.seq_len
        k = self.stream.knowledge_tokens_per_batch
        self.tokens_per_step, self.knowledge_per_step = slots, k
        self.web_per_step = slots - k - int(0 < k < slots)  # the knowledge->web junction slot carries no loss
        self.tokens_per_exposure = float(prepared.synbio.mean_bio_tokens) + 1.0
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
        self.eval_set = prepared.eval_set.subset(
            evaluate.select_eval_people(d.num_people, config.eval.num_people, config.eval.seed)
        )

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
            "eval_people": int(len(np.unique(self.eval_set.person))),
            "bits_per_param_denominator": "params_non_embedding",
        }

    def counts(self, completed: int) -> dict[str, float]:
        """Tokens seen per source and exposures per training person after `completed` steps."""
        if self.stream.knowledge is None or not len(self.people):  # r = 0: no knowledge in the stream
            exposures = np.zeros(max(1, len(self.people)))
        else:
            exposures = self.stream.exposures(completed)[self.people]
        return {
            "tokens": completed * self.tokens_per_step,
            "knowledge_tokens": completed * self.knowledge_per_step,
            "web_tokens": completed * self.web_per_step,
            "exposures": float(exposures.mean()),
            "exposures_min": int(exposures.min()),
        }


class _Run:
    """One training session of a run: state, writers, timers; `loop` trains from the restored step to the end."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str, mesh, rules, prepared: Any):
        self.config, self.workdir, self.mesh, self.rules = config, workdir, mesh, rules
        self.prepared = prepared
        self.facts = RunFacts(config, prepared, mesh)
        config.train.num_steps = self.facts.num_steps  # `config` is train_and_evaluate's private copy
        self.resolved = config_lib.as_dict(config)  # what config.json and every checkpoint record
        self.is_writer = jax.process_index() == 0
        self.timers = metrics.Timers()
        t = config.train
        self.metrics_writer = metrics.MetricsWriter(workdir, run_folder.METRICS, t.tensorboard, self.is_writer)
        self.eval_writer = metrics.MetricsWriter(workdir, run_folder.EVAL, t.tensorboard, self.is_writer)
        self.prefetch: Prefetcher | None = None
        self.last_eval: dict[str, Any] = {}
        self.wall_before = 0.0  # wall time of earlier sessions of this run (from the checkpoint)
        self.t_start = time.perf_counter()

    def wall_time(self) -> float:
        return self.wall_before + time.perf_counter() - self.t_start

    # ---------------------------------------------------------------------------------------------- train loop

    def loop(self, stop_after: int | None) -> dict[str, Any]:
        """Train to num_steps (or stop_after), resuming from the latest checkpoint; returns the last eval row."""
        t = self.config.train
        ckpt = checkpoint.Checkpointer(
            os.path.join(self.workdir, run_folder.CHECKPOINT_DIR), t.keep_checkpoints, t.milestone_every, self.resolved
        )
        start = ckpt.latest_step() or 0
        end = self.facts.num_steps if stop_after is None else min(self.facts.num_steps, stop_after)
        if start >= end:
            ckpt.close()
            return self.result(end)
        spec = StepSpec.create(self.facts.model_cfg, self.config.optim, self.facts.num_steps, self.mesh, self.rules)
        state, shardings = init_state(spec, self.mesh, self.rules, self.config.seed)
        if start:
            state, meta = ckpt.restore(state, start)
            self.timers = metrics.Timers(meta["timers"])
            self.wall_before = float(meta["wall_time_s"])
            logging.info("resumed from %s at step %d", ckpt.directory, start)
        self.logits_fn = LogitsFn(spec.graphdef, self.mesh if jax.process_count() > 1 else None)
        batch_sharding = sharding.batch_sharding(self.mesh, self.rules)
        step_fn = jit_train_step(shardings, batch_sharding, self.mesh)
        self.prefetch = Prefetcher(
            DeviceStream(self.facts.stream, batch_sharding), start, jax.process_index(), jax.process_count()
        )
        try:
            batch = next(self.prefetch)
            with self.timers.phase("compile"):
                compiled = step_fn.lower(spec, state, batch).compile()
            logging.info("compiled the train step in %.2f s", self.timers.totals["compile"])
            log = _StepLog(self)
            pending: tuple[int, jax.Array] | None = None
            for step in range(start, end):
                if step > start:
                    batch = next(self.prefetch)
                state, step_metrics = compiled(state, batch)
                if pending is not None:
                    log.add(pending[0], np.asarray(pending[1]))  # step t-1, read while step t runs
                pending = (step, step_metrics)
                done = step + 1
                at_eval = done == self.facts.num_steps or (t.eval_every and done % t.eval_every == 0)
                at_ckpt = done == end or (t.checkpoint_every and done % t.checkpoint_every == 0)
                if done % t.log_every == 0 or at_eval or at_ckpt:
                    log.add(pending[0], np.asarray(pending[1]))
                    pending = None
                    log.write(done)
                if at_eval:
                    t0 = time.perf_counter()
                    self.evaluate(state["params"], done)
                    log.paused += time.perf_counter() - t0
                if at_ckpt:
                    t0 = time.perf_counter()
                    with self.timers.phase("checkpoint"):
                        ckpt.save(done, state, {"timers": self.timers.totals, "wall_time_s": self.wall_time()})
                    log.paused += time.perf_counter() - t0
        finally:
            self.prefetch.close()
            ckpt.close()
        return self.result(end)

    def result(self, end: int) -> dict[str, Any]:
        """The final eval row when the run is complete, else a marker of where this session stopped."""
        if end < self.facts.num_steps:
            return {"step": end, "stopped_early": True}
        return self.last_eval or _last_eval_row(self.workdir)

    def evaluate(self, params: Any, completed: int) -> dict[str, Any]:
        """Memorization on the eval subset and web validation loss; appends a row to eval.jsonl."""
        cfg, d = self.config.eval, self.config.data
        t0 = time.perf_counter()
        with self.timers.phase("eval"):
            mem = evaluate.memorization(
                self.logits_fn,
                params,
                self.facts.eval_set,
                cfg.batch_size,
                pool_sizes=self.prepared.synbio.population.pool_sizes,
                population_size=d.num_people,
            )
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
            "bits_per_param": mem["bits_stored_total"] / self.facts.params_non_embedding,
            "web_loss": web_loss,
            "params_total": self.facts.params_total,
            "params_non_embedding": self.facts.params_non_embedding,
            "eval_time_s": time.perf_counter() - t0,
            "wall_time_s": self.wall_time(),
        }
        self.eval_writer.write(row)
        self.last_eval = row
        logging.info(
            "eval step %d: acc %.4f ± %.4f, value loss %.3f, bits/param %.3f, web loss %.3f (%.1f s)",
            completed,
            row["acc"],
            row["acc_se"],
            row["value_loss"],
            row["bits_per_param"],
            web_loss,
            row["eval_time_s"],
        )
        return row


class _StepLog:
    """Aggregates per-step metric vectors between log points and writes one metrics.jsonl row per log point."""

    def __init__(self, run: _Run):
        self.run = run
        self.sums = np.zeros(len(STEP_METRICS))
        self.steps = 0
        self.last = np.zeros(len(STEP_METRICS))
        self.t0 = time.perf_counter()
        self.wait0 = run.prefetch.wait_seconds
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
        wait = r.prefetch.wait_seconds - self.wait0
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
        self.t0, self.wait0, self.paused = now, r.prefetch.wait_seconds, 0.0


# ------------------------------------------------------------------------------------------------------ public


def _prepare(config: ml_collections.ConfigDict) -> Any:
    """data_gen.prepare.prepare, run by process 0 first when there are several (they may share data.dir)."""
    from jax.experimental import multihost_utils

    from data_gen.prepare import prepare

    if jax.process_count() == 1:
        return prepare(config.data)
    if jax.process_index() == 0:
        prepared = prepare(config.data)
    multihost_utils.sync_global_devices("mixlab: data prepared")
    return prepared if jax.process_index() == 0 else prepare(config.data)


def _last_eval_row(workdir: str) -> dict:
    rows = run_folder.read_eval_rows(workdir)
    if not rows:
        raise RuntimeError(f"{workdir}/{run_folder.STATUS_FILE} says complete but its eval rows are empty")
    return rows[-1]


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, *, stop_after: int | None = None
) -> dict[str, Any]:
    """Train and evaluate one run in `workdir`; returns the final eval row.

    The config is validated (mixlab.config.validate) before anything is built or written. A complete run returns
    its final eval row without training. `stop_after` ends the session after that many steps (checkpointed, status
    stays "running"), e.g. for time-sliced jobs; relaunching continues the run.
    """
    config = ml_collections.ConfigDict(config.to_dict())  # a private, unlocked copy with placeholders resolved
    mesh, rules = config_lib.validate(config)
    saved = run_folder.read_config(workdir) if os.path.isdir(workdir) else None
    if saved is not None:
        config_lib.check_same_run(saved, config_lib.as_dict(config), f"run folder {workdir}")
        if run_folder.is_complete(workdir):
            logging.info("%s is complete; nothing to do", workdir)
            return _last_eval_row(workdir)
    os.makedirs(workdir, exist_ok=True)
    is_writer = jax.process_index() == 0
    t0 = time.perf_counter()

    def status(value: str, error: str | None = None, wall: float | None = None) -> None:
        if is_writer:
            run_folder.write_status(workdir, value, error, time.perf_counter() - t0 if wall is None else wall)

    status("running")
    run = None
    try:
        run = _Run(config, workdir, mesh, rules, _prepare(config))
        if is_writer:
            run_folder.write_json(
                os.path.join(workdir, run_folder.CONFIG_FILE), {**run.resolved, "derived": run.facts.derived()}
            )
        result = run.loop(stop_after)
    except BaseException as e:
        status("failed", f"{type(e).__name__}: {e}", run.wall_time() if run else None)
        raise
    finally:
        if run is not None:
            run.metrics_writer.close()
            run.eval_writer.close()
    status("complete" if "stopped_early" not in result else "running", None, run.wall_time())
    return result


if __name__ == "__main__":  # `python -m mixlab.train` is kept as another name of the entry point, mixlab/main.py
    from mixlab.main import run

    run()
