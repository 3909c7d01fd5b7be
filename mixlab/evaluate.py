"""Evaluation: memorization (teacher-forced exact match, value loss, bits stored), task accuracy and web loss.

Exact match under teacher forcing: an item is correct iff the argmax at every value position, given the true prefix,
equals the true value token. By induction this is exactly greedy decoding of |v| tokens from the prompt (each greedy
step sees the true prefix as long as all earlier steps were right), so one batched forward pass replaces the loop.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from data_gen.synbio import ATTRIBUTES

WIDTH_STEP = 8  # memorization batch widths are multiples of this (see score_items)
LEARNED_SHARE = 0.5  # a person counts as learned with at least this share of their items correct


class ForwardFn(Protocol):
    """(params, tokens_BxL) -> logits_BxLxV, pure and jittable (e.g. mixlab.step.LogitsFn).

    The scorers jit it as a static argument, so it must be hashable, and the same object on every call: a new
    function object recompiles.
    """

    def __call__(self, params: Any, tokens_BxL: jax.Array, /) -> jax.Array: ...


class ScoredItems(Protocol):
    """What score_items reads: E right-padded prompt/value pairs (synbio.EvalSet, task.TaskEvalSet of data_gen)."""

    prompt: np.ndarray  # [E, Lp] int32
    prompt_len: np.ndarray  # [E]
    value: np.ndarray  # [E, Lv] int32
    value_len: np.ndarray  # [E]


class EvalItems(ScoredItems, Protocol):
    """The fields of data_gen.synbio.EvalSet that memorization reads."""

    person: np.ndarray  # [E]
    attribute: np.ndarray  # [E] index into ATTRIBUTES


class TaskItems(ScoredItems, Protocol):
    """The fields of data_gen.task.TaskEvalSet that task_accuracy reads."""

    question: np.ndarray  # [E] index of the held-out question
    kind: np.ndarray  # [E] index into kinds
    kinds: tuple[str, ...]


class TokenStoreLike(Protocol):
    """What web validation reads from data_gen.web.TokenStore."""

    num_docs: int

    def doc(self, i: int) -> np.ndarray: ...


def select_eval_people(num_people_total: int, num_eval: int, seed: int) -> np.ndarray:
    """Sorted ids of a seeded subset of `num_eval` people (-1 = everyone).

    The subset of size k is the first k of one seeded permutation, so a larger subset contains every smaller one.
    """
    if num_people_total < 1:
        raise ValueError(f"num_people_total must be >= 1, got {num_people_total}")
    if num_eval == -1:
        return np.arange(num_people_total, dtype=np.int64)
    if not 1 <= num_eval <= num_people_total:
        raise ValueError(f"num_eval must be -1 or in [1, num_people_total={num_people_total}], got {num_eval}")
    perm = np.random.default_rng(seed).permutation(num_people_total)
    return np.sort(perm[:num_eval]).astype(np.int64)


@functools.partial(jax.jit, static_argnums=0)
def _score_batch(
    logits_fn: ForwardFn, params: Any, tokens_BxL: jax.Array, targets_BxL: jax.Array, value_mask_BxL: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Per row: exact match of the masked (value) targets under teacher forcing, and their summed loss (nats).

    Reductions over V (argmax, logsumexp, the target's logit) run straight on the logits: no log-softmax tensor.
    """
    logits_BxLxV = logits_fn(params, tokens_BxL).astype(jnp.float32)
    argmax_BxL = jnp.argmax(logits_BxLxV, axis=-1)
    max_BxL = jnp.take_along_axis(logits_BxLxV, argmax_BxL[..., None], axis=-1)[..., 0]
    lse_BxL = max_BxL + jnp.log(jnp.sum(jnp.exp(logits_BxLxV - max_BxL[..., None]), axis=-1))  # 2 passes over V
    hit_BxL = argmax_BxL == targets_BxL
    target_logit_BxL = jnp.take_along_axis(logits_BxLxV, targets_BxL[..., None], axis=-1)[..., 0]
    target_logp_BxL = target_logit_BxL - lse_BxL
    correct_B = jnp.all(hit_BxL | ~value_mask_BxL, axis=-1)
    loss_B = -jnp.sum(jnp.where(value_mask_BxL, target_logp_BxL, 0.0), axis=-1)
    return correct_B, loss_B


def _check_eval_set(eval_set: ScoredItems, fields: tuple[str, ...] = ()) -> None:
    """ValueError unless the items are well formed: lengths within the padding, `fields` with one entry per item."""
    e = len(eval_set.prompt)
    if e == 0:
        raise ValueError("eval_set is empty")
    for name in ("prompt_len", "value", "value_len", *fields):
        if len(getattr(eval_set, name)) != e:
            raise ValueError(f"eval_set.{name} has {len(getattr(eval_set, name))} items, prompt has {e}")
    lp, lv = eval_set.prompt.shape[1], eval_set.value.shape[1]
    if not np.all((eval_set.prompt_len >= 1) & (eval_set.prompt_len <= lp)):
        raise ValueError(f"eval_set.prompt_len must be in [1, {lp}]")
    if not np.all((eval_set.value_len >= 1) & (eval_set.value_len <= lv)):
        raise ValueError(f"eval_set.value_len must be in [1, {lv}]")


def teacher_forced_inputs(
    prompt: np.ndarray, prompt_len: np.ndarray, value: np.ndarray, value_len: np.ndarray, width: int
) -> np.ndarray:
    """[B, width] int32: prompt[:prompt_len] + value[:value_len], right-padded with 0 (or cut) to `width`.

    With width >= prompt_len + value_len - 1 this is the model input of teacher forcing (the last value token is
    never an input); width = Lp + Lv gives the whole sequence.
    """
    lp, lv = prompt.shape[1], value.shape[1]
    pos = np.arange(width)[None, :]
    pl, vl = prompt_len[:, None], value_len[:, None]
    prompt_at = np.take_along_axis(prompt, np.clip(pos, 0, lp - 1), axis=1)
    value_at = np.take_along_axis(value, np.clip(pos - pl, 0, lv - 1), axis=1)
    return np.where(pos < pl, prompt_at, np.where(pos < pl + vl, value_at, 0)).astype(np.int32)


def score_items(
    logits_fn: ForwardFn, params: Any, eval_set: ScoredItems, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per item: (exact match [E] bool, value loss [E] in nats).

    Items are sorted by length and scored in batches of `batch_size` rows (the item count is padded up to a
    multiple of it). A batch's width is its longest item rounded up to a multiple of WIDTH_STEP, capped at
    Lp + Lv - 1, so one eval set compiles at most ceil((Lp + Lv - 1) / WIDTH_STEP) shapes, once.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _check_eval_set(eval_set)
    e = len(eval_set.prompt)
    full_width = eval_set.prompt.shape[1] + eval_set.value.shape[1] - 1
    needed = eval_set.prompt_len + eval_set.value_len - 1
    order = np.argsort(needed, kind="stable")
    padded_order = np.concatenate([order, np.full(-e % batch_size, order[0])])
    outs = []
    for start in range(0, len(padded_order), batch_size):
        idx = padded_order[start : start + batch_size]
        width = min(full_width, -(-int(needed[idx].max()) // WIDTH_STEP) * WIDTH_STEP)
        pl, vl = eval_set.prompt_len[idx][:, None], eval_set.value_len[idx][:, None]
        seq = teacher_forced_inputs(eval_set.prompt[idx], pl[:, 0], eval_set.value[idx], vl[:, 0], width + 1)
        t = np.arange(width)[None, :]  # input position t predicts seq[t + 1]; value tokens sit at pl .. pl+vl-1
        value_mask = (t >= pl - 1) & (t < pl + vl - 1)
        outs.append(_score_batch(logits_fn, params, seq[:, :-1], seq[:, 1:], value_mask))
    fetched = jax.device_get(outs)  # one sync: the batches above were dispatched asynchronously
    correct, loss = np.zeros(e, bool), np.zeros(e, np.float64)
    correct[order] = np.concatenate([c for c, _ in fetched])[:e]
    loss[order] = np.concatenate([x for _, x in fetched])[:e]
    return correct, loss


def clustered_se(correct_per_person: np.ndarray, items_per_person: np.ndarray) -> float:
    """Standard error of acc = sum(c) / sum(m) with people as clusters (items of one person are correlated).

    SE = sqrt(n / (n - 1) * sum_i (c_i - acc * m_i)^2) / sum_i m_i; with equal m_i this is the standard error of
    the per-person accuracies, std(c_i / m_i, ddof=1) / sqrt(n). NaN for fewer than 2 people.
    """
    n = len(items_per_person)
    if n < 2:
        return float("nan")
    acc = correct_per_person.sum() / items_per_person.sum()
    resid = correct_per_person - acc * items_per_person
    return float(math.sqrt(n / (n - 1) * np.sum(resid**2)) / items_per_person.sum())


def bits_lower_bound(
    loss_bits: np.ndarray, person_index: np.ndarray, attribute: np.ndarray, pool_bits: np.ndarray, num_people: int
) -> np.ndarray:
    """Per person: sum over attributes of max(0, log2(pool) - mean over templates of -log2 p(value | prompt)).

    `person_index` is 0..num_people-1; an attribute with no item for a person contributes 0.
    """
    a = len(pool_bits)
    key = person_index * a + attribute
    count = np.bincount(key, minlength=num_people * a)
    total = np.bincount(key, weights=loss_bits, minlength=num_people * a)
    mean_loss = np.divide(total, count, out=np.zeros_like(total), where=count > 0).reshape(num_people, a)
    bound = np.maximum(0.0, pool_bits[None, :] - mean_loss)
    return np.where(count.reshape(num_people, a) > 0, bound, 0.0).sum(axis=1)


def memorization(
    logits_fn: ForwardFn,
    params: Any,
    eval_set: EvalItems,
    batch_size: int,
    *,
    pool_sizes: Mapping[str, int] | None = None,
    population_size: int | None = None,
    subsets: Mapping[str, np.ndarray] | None = None,
) -> dict[str, float | int]:
    """Exact-match accuracy, value-token loss and a lower bound on stored bits over every item of `eval_set`.

    Args:
      logits_fn: the forward pass (see ForwardFn: the same object on every call, or the scorer recompiles).
      eval_set: the items (data_gen.synbio.EvalSet, possibly .subset(people)).
      batch_size: items per forward pass; the item count is padded up to a multiple of it.
      pool_sizes: number of possible values per attribute (keys: ATTRIBUTES); defaults to eval_set.pool_sizes.
      population_size: people in the full population when eval_set holds a subset; bits_stored_total
        extrapolates bits_per_person to it (default: the evaluated people are the population).
      subsets: name -> person ids (e.g. "kept" for the people a subsampled run trains on, "group_<k>" for power-law
        groups); each adds acc_<name>, acc_se_<name>, n_correct_<name>, n_eval_<name>, n_people_<name> and
        people_learned_<name>
        over the evaluated people among them.

    Returns a dict of python numbers: acc, acc_se (people as clusters), n_eval, n_correct, n_people,
    acc_<attribute>, value_loss (nats per value token), bits_stored (sum over the evaluated people),
    bits_per_person (their mean), bits_stored_total (bits_per_person * population_size) and
    bits_per_person_pooled (sum over attributes of max(0, log2(pool) - the attribute's mean loss over all items):
    the population-level form of the bound; when every person has every attribute, bits_per_person >= it), and
    people_learned: evaluated people with at least LEARNED_SHARE of their items correct.
    """
    if pool_sizes is None:
        pool_sizes = getattr(eval_set, "pool_sizes", None)
        if pool_sizes is None:
            raise ValueError("pool_sizes is required: eval_set has no pool_sizes")
    missing = [a for a in ATTRIBUTES if a not in pool_sizes]
    if missing:
        raise ValueError(f"pool_sizes lacks attributes {missing}")
    if any(pool_sizes[a] < 1 for a in ATTRIBUTES):
        raise ValueError(f"pool_sizes must be >= 1, got {dict(pool_sizes)}")
    _check_eval_set(eval_set, ("person", "attribute"))
    if not np.all((eval_set.attribute >= 0) & (eval_set.attribute < len(ATTRIBUTES))):
        raise ValueError(f"eval_set.attribute must index ATTRIBUTES (0..{len(ATTRIBUTES) - 1})")

    people, person_index = np.unique(eval_set.person, return_inverse=True)
    n_people = len(people)
    if population_size is None:
        population_size = n_people
    if population_size < n_people:
        raise ValueError(f"population_size={population_size} is smaller than the {n_people} people evaluated")
    correct, loss_nats = score_items(logits_fn, params, eval_set, batch_size)
    items_pp = np.bincount(person_index, minlength=n_people)
    correct_pp = np.bincount(person_index, weights=correct, minlength=n_people)
    attribute = np.asarray(eval_set.attribute)

    out: dict[str, float | int] = {
        "acc": float(correct.mean()),
        "acc_se": clustered_se(correct_pp, items_pp),
        "n_eval": int(len(correct)),
        "n_correct": int(correct.sum()),
        "n_people": int(n_people),
    }
    for i, name in enumerate(ATTRIBUTES):
        sel = attribute == i
        out[f"acc_{name}"] = float(correct[sel].mean()) if sel.any() else float("nan")
    learned = correct_pp >= LEARNED_SHARE * items_pp
    out["people_learned"] = int(learned.sum())
    for name, ids in (subsets or {}).items():
        member = np.isin(people, ids)  # over the evaluated people
        k, m = correct_pp[member].sum(), items_pp[member].sum()
        out[f"acc_{name}"] = float(k / m) if m else float("nan")
        out[f"acc_se_{name}"] = clustered_se(correct_pp[member], items_pp[member])
        out[f"n_correct_{name}"], out[f"n_eval_{name}"] = int(k), int(m)
        out[f"n_people_{name}"], out[f"people_learned_{name}"] = int(member.sum()), int(learned[member].sum())
    out["value_loss"] = float(loss_nats.sum() / np.sum(eval_set.value_len))
    pool_bits = np.log2(np.array([pool_sizes[a] for a in ATTRIBUTES], np.float64))
    loss_bits = loss_nats / math.log(2)
    bits_pp = bits_lower_bound(loss_bits, person_index, attribute, pool_bits, n_people)
    out["bits_stored"] = float(bits_pp.sum())
    out["bits_per_person"] = float(bits_pp.mean())
    out["bits_stored_total"] = float(bits_pp.mean() * population_size)
    # the same bound with the loss averaged over all evaluated people before the clip (no per-person clipping)
    pooled = bits_lower_bound(loss_bits, np.zeros_like(person_index), attribute, pool_bits, 1)
    out["bits_per_person_pooled"] = float(pooled[0])
    return out


def task_accuracy(
    logits_fn: ForwardFn, params: Any, eval_set: TaskItems, batch_size: int, *, bits_per_item: float
) -> dict[str, float | int]:
    """Exact match on a task's held-out items (data_gen.task.TaskEvalSet), per item kind.

    Args:
      logits_fn, params, batch_size: as for memorization.
      eval_set: every kind holds one item per held-out question; kinds[0] ("final": the final answer) is the
        kind that acc reports.
      bits_per_item: the entropy of the final answer under uniform questions (data_gen.task.Task.bits_per_item).

    Returns a dict of python numbers: acc, acc_se (questions are independent: the binomial SE, via clustered_se
    with one item per cluster), n_eval and n_correct (items of kinds[0]), n_people (questions scored: the
    clusters), value_loss (nats per value token of kinds[0]), acc_<kind> and value_loss_<kind> for every kind,
    bits_per_item, and bits_learned_per_item = max(0, bits_per_item - the mean loss of a kinds[0] value in bits):
    a lower bound on what the model's answer distribution tells about the answer, the task's bits_per_person.
    """
    _check_eval_set(eval_set, ("question", "kind"))
    kind = np.asarray(eval_set.kind)
    if not np.all((kind >= 0) & (kind < len(eval_set.kinds))):
        raise ValueError(f"eval_set.kind must index kinds {eval_set.kinds}")
    correct, loss_nats = score_items(logits_fn, params, eval_set, batch_size)
    per_kind: dict[str, float] = {}
    for k, name in enumerate(eval_set.kinds):
        sel = kind == k
        per_kind[f"acc_{name}"] = float(correct[sel].mean()) if sel.any() else float("nan")
        tokens = np.sum(eval_set.value_len[sel])
        per_kind[f"value_loss_{name}"] = float(loss_nats[sel].sum() / tokens) if sel.any() else float("nan")
    main = kind == 0
    n = int(main.sum())
    if n == 0:
        raise ValueError(f"eval_set has no item of kind {eval_set.kinds[0]!r}")
    c = correct[main].astype(np.float64)
    out: dict[str, float | int] = {
        "acc": float(c.mean()),
        "acc_se": clustered_se(c, np.ones(n)),
        "n_eval": n,
        "n_correct": int(c.sum()),
        "n_people": int(np.unique(np.asarray(eval_set.question)[main]).size),
        "value_loss": per_kind[f"value_loss_{eval_set.kinds[0]}"],
        **per_kind,
        "bits_per_item": float(bits_per_item),
        "bits_learned_per_item": max(0.0, float(bits_per_item) - float(loss_nats[main].mean()) / math.log(2)),
    }
    return out


def validation_windows(
    val: np.ndarray | TokenStoreLike, seq_len: int, num_windows: int, eos_id: int | None = None
) -> np.ndarray:
    """The first `num_windows` non-overlapping windows [num_windows, seq_len + 1] of the validation stream.

    `val` is a 1-D token array (the stream itself) or a token store with num_docs and doc(i), whose stream is
    "doc(0) EOS doc(1) EOS ..." in store order. No seed: every call and every run sees the same windows.
    """
    need = num_windows * (seq_len + 1)
    if isinstance(val, np.ndarray):
        if val.ndim != 1:
            raise ValueError(f"a validation token array must be 1-D, got shape {val.shape}")
        stream = val
    else:
        if eos_id is None:
            raise ValueError("eos_id is required when val is a token store")
        pieces, have = [], 0
        for i in range(val.num_docs):
            if have >= need:
                break
            doc = np.asarray(val.doc(i))
            pieces += [doc, np.array([eos_id], doc.dtype)]
            have += len(doc) + 1
        stream = np.concatenate(pieces) if pieces else np.zeros(0, np.int32)
    if len(stream) < need:
        raise ValueError(
            f"validation set has {len(stream)} tokens, fewer than num_batches * batch_size * (seq_len + 1) = {need}"
        )
    return stream[:need].astype(np.int32).reshape(num_windows, seq_len + 1)


@functools.partial(jax.jit, static_argnums=0)
def _batch_nll(logits_fn: ForwardFn, params: Any, windows: jax.Array) -> jax.Array:
    """Summed next-token loss (nats) over a batch of windows [B, L + 1]."""
    logits_BxLxV = logits_fn(params, windows[:, :-1]).astype(jnp.float32)
    logp_BxLxV = jax.nn.log_softmax(logits_BxLxV, axis=-1)
    return -jnp.sum(jnp.take_along_axis(logp_BxLxV, windows[:, 1:, None], axis=-1))


def web_loss(
    logits_fn: ForwardFn,
    params: Any,
    val: np.ndarray | TokenStoreLike,
    seq_len: int,
    num_batches: int,
    batch_size: int,
    *,
    eos_id: int | None = None,
) -> float:
    """Mean next-token loss (nats/token) over the fixed windows of validation_windows(val, seq_len, B * batches)."""
    for name, v in (("seq_len", seq_len), ("num_batches", num_batches), ("batch_size", batch_size)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    windows = validation_windows(val, seq_len, num_batches * batch_size, eos_id)
    sums = [_batch_nll(logits_fn, params, w) for w in windows.reshape(num_batches, batch_size, seq_len + 1)]
    return float(np.sum(jax.device_get(sums), dtype=np.float64) / windows[:, 1:].size)
