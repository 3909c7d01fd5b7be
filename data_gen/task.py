"""Knowledge-dense tasks beside SynBio (the paper's Appendix E): questions with computed answers, token-level.

A task document is a question drawn uniformly from the task's finite universe (integer rows [width], each entry in
[0, values)) followed by its answer, "Q: ...\\nA: ...", under one of the task's answer templates. Like a SynBio
biography (data_gen/synbio.py), its token sequence is *defined* as the concatenation of separately tokenized
pieces: every run of literal template text is one piece and every {field} (a number, a fraction's denominator) is
one piece. So an evaluation prompt + value is exactly a span of the training stream whatever the tokenizer would
merge across a piece boundary, and decoding the tokens gives the text (byte-level BPE round trip).

Held-out set: `heldout_questions` takes the first n distinct questions of a sequence seeded by the task seed (a
larger set holds every smaller one). Training (mixlab/task_source.py) draws a fresh question per document and
redraws any held-out one, so no evaluation question is ever trained on; the training distribution is uniform over
the universe minus the held-out set.

Evaluation items (`TaskEvalSet`), one per held-out question and item kind, all under the task's fixed evaluation
template (`EVAL_TEMPLATE`, which training also uses). The value ends with the EOS token, which follows every
document in the stream, so a model that would go on writing ("2" for "2/3") is wrong:
  final  prompt = question + the template's worked answer up to its final answer; value = the final answer + EOS.
  full   prompt = question + the template's opening words (its text before the first number, which tells the
         templates apart); value = the rest of the worked answer, final answer and EOS included.
Scored by one teacher-forced pass (mixlab.evaluate.score_items), an item is right iff greedy decoding from the
prompt reproduces the value. `final` is the exact match of the final answer, the paper's score, given the correct
worked steps; `full` also needs every step, so a right `full` item implies a right `final` item.
"""

from __future__ import annotations

import abc
import dataclasses
import string
from collections.abc import Sequence

import numpy as np

from data_gen.synbio_eval import pad_rows
from data_gen.synbio_tokens import PieceTable, TextEncoder

EVAL_TEMPLATE = 0  # the answer template of every evaluation item
KINDS = ("final", "full")  # evaluation item kinds; a task's first kind is the one its accuracy `acc` reports
_HELDOUT_TAG = 0x68656C64  # RNG stream of the held-out set, apart from training's
_HELDOUT_BATCH = 4096


@dataclasses.dataclass(frozen=True)
class TaskEvalSet:
    """E = len(kinds) x n items, ordered by kind, then held-out question; arrays as in data_gen.synbio.EvalSet.

    prompt [E, Lp] int32 right-padded, prompt_len [E]; value [E, Lv] int32 right-padded (the last value token is
    EOS), value_len [E]; question [E] (index into `questions`); kind [E] (index into `kinds`);
    questions [n, width]: the held-out questions.
    """

    prompt: np.ndarray
    prompt_len: np.ndarray
    value: np.ndarray
    value_len: np.ndarray
    question: np.ndarray
    kind: np.ndarray
    kinds: tuple[str, ...]
    questions: np.ndarray

    def __len__(self) -> int:
        return len(self.question)


class PieceTemplates:
    """Document templates ("... {field} ...") as piece-id slots; literal runs are pieces of `table`.

    slots [T, S] int64: a literal's piece id (>= 0), or -1 - f for field f; shorter templates are padded with the
    empty piece. offsets [T, S]: where each slot starts in its template string (to cut a template at a point).
    """

    def __init__(self, table: PieceTable, templates: Sequence[str], fields: Sequence[str]):
        self.fields = tuple(fields)
        self.empty = int(table.add([""])[0])
        rows, offsets = [], []
        for template in templates:
            row, starts, at = [], [], 0
            for literal, field, spec, conversion in string.Formatter().parse(template):
                if literal:
                    row.append(int(table.add([literal])[0]))
                    starts.append(at)
                    at += len(literal)
                if field is not None:
                    if field not in self.fields or spec or conversion:
                        raise ValueError(f"template field {{{field}}} is not one of {self.fields} (no format spec)")
                    row.append(-1 - self.fields.index(field))
                    starts.append(at)
                    at += len(field) + 2
            rows.append(row)
            offsets.append(starts)
        width = max(len(r) for r in rows)
        self.slots = np.array([r + [self.empty] * (width - len(r)) for r in rows], np.int64)
        self.offsets = np.array(
            [o + [len(t)] * (width - len(o)) for o, t in zip(offsets, templates, strict=True)], np.int64
        )

    def pieces(self, templates: np.ndarray, field_pieces: np.ndarray) -> np.ndarray:
        """[n, S] piece ids of n documents: template ids [n], piece of every field [n, F]."""
        slots = self.slots[templates]
        fields = np.take_along_axis(field_pieces, np.maximum(-1 - slots, 0), axis=1)
        return np.where(slots >= 0, slots, fields)

    def field_slots(self, template: int, field: str) -> np.ndarray:
        """Slot indices of `field` in the template."""
        return np.flatnonzero(self.slots[template] == -1 - self.fields.index(field))


def entropy_bits(probs: np.ndarray) -> float:
    """Shannon entropy in bits of a distribution (zeros allowed)."""
    p = np.asarray(probs, np.float64)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def heldout_questions(task: Task, seed: int, n: int) -> np.ndarray:
    """[n, width] int64: the first n distinct questions of task.draw under a seeded generator (nested in n)."""
    if n > task.universe_size // 2:
        raise ValueError(f"{n} held-out questions exceed half the {task.universe_size} questions of {task.name}")
    rng = np.random.default_rng([seed, _HELDOUT_TAG])
    kept = np.zeros((0, task.width), np.int64)
    while len(kept) < n:  # draws in batches of a fixed size, so the sequence does not depend on n
        pool = np.concatenate([kept, task.draw(rng, _HELDOUT_BATCH)])
        _, first = np.unique(row_keys(pool), return_index=True)
        kept = pool[np.sort(first)][:n]
    return kept


def row_keys(questions: np.ndarray) -> np.ndarray:
    """One comparable value per question row (its bytes), for set membership with np.isin."""
    rows = np.ascontiguousarray(questions, dtype=np.uint8)
    return rows.view(np.dtype((np.void, rows.shape[1]))).ravel()


class Task(abc.ABC):
    """A question-answer task rendered at the token level (see the module docstring).

    Subclasses give the question and answer templates, the fields and their pieces, uniform draws from the
    universe, and the exact length and answer distributions under uniform questions.
    """

    name: str
    kinds: tuple[str, ...]
    final_field: str  # the field that starts the final answer
    width: int  # integers per question
    values: int  # each integer of a question lies in [0, values)

    def __init__(self, tokenizer: TextEncoder, question: str, answers: Sequence[str], fields: Sequence[str]):
        if not 2 <= self.values <= 256:
            raise ValueError(f"values must be in [2, 256] (question entries are stored as bytes), got {self.values}")
        self.tokenizer = tokenizer
        self.eos_id = int(tokenizer.eos_id)
        self.table = PieceTable(tokenizer)
        self.question_template, self.answer_templates = question, tuple(answers)
        self.templates = PieceTemplates(self.table, [question + a for a in answers], fields)
        self._add_pieces()
        self._lengths = self.table.lengths
        self._slot_lengths = self._lengths[np.maximum(self.templates.slots, 0)] * (self.templates.slots >= 0)

    @property
    def num_templates(self) -> int:
        return len(self.answer_templates)

    @property
    @abc.abstractmethod
    def universe_size(self) -> int:
        """Number of distinct questions."""

    @abc.abstractmethod
    def _add_pieces(self) -> None:
        """Add the pieces of every field value to self.table (called once, before the table freezes)."""

    @abc.abstractmethod
    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """[n, width] int64: n questions drawn uniformly from the universe."""

    @abc.abstractmethod
    def field_pieces(self, questions: np.ndarray) -> np.ndarray:
        """[n, F] piece id of every field of every question."""

    @abc.abstractmethod
    def field_distributions(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per field, (piece ids, probabilities) of its piece under uniform questions."""

    @abc.abstractmethod
    def answer_probabilities(self) -> np.ndarray:
        """Probability of every distinct final answer under uniform questions."""

    @abc.abstractmethod
    def text_fields(self, question: np.ndarray) -> dict[str, str]:
        """The text of every field of one question (the reference rendering of `render_text`)."""

    # ---------------------------------------------------------------------------------------------- rendering

    def pieces(self, questions: np.ndarray, templates: np.ndarray) -> np.ndarray:
        """[n, S] piece ids of the documents of (questions [n, width], template ids [n])."""
        return self.templates.pieces(np.asarray(templates, np.int64), self.field_pieces(questions))

    def lengths(self, questions: np.ndarray, templates: np.ndarray) -> np.ndarray:
        """[n] token length (without EOS) of each document."""
        return self._lengths[self.pieces(questions, templates)].sum(axis=1)

    def render_batch(self, questions: np.ndarray, templates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(tokens int32 [T], offsets int64 [n + 1]): document i is tokens[offsets[i]:offsets[i + 1]]."""
        pieces = self.pieces(questions, templates)
        offsets = np.concatenate([[0], np.cumsum(self._lengths[pieces].sum(axis=1))]).astype(np.int64)
        return self.table.gather(pieces), offsets

    def render_text(self, question: np.ndarray, template: int) -> str:
        """The document as text, by string formatting (independent of the pieces)."""
        return (self.question_template + self.answer_templates[template]).format(**self.text_fields(question))

    # -------------------------------------------------------------------------------------------- statistics

    @property
    def bits_per_item(self) -> float:
        """Entropy (bits) of the final answer of a uniformly drawn question: what one item's answer holds."""
        return entropy_bits(self.answer_probabilities())

    @property
    def chance_acc(self) -> float:
        """Accuracy of always giving the most likely answer: the floor a model reaches without solving the task."""
        return float(self.answer_probabilities().max())

    def _expected_slot_lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, max) token length of every slot [T, S] under uniform questions."""
        slots = self.templates.slots
        mean, top = self._slot_lengths.astype(np.float64), self._slot_lengths.copy()
        for f, (ids, probs) in enumerate(self.field_distributions()):
            lengths = self._lengths[ids]
            at = slots == -1 - f
            mean[at] = float(np.dot(probs, lengths))
            top[at] = int(lengths[probs > 0].max())
        return mean, top

    @property
    def mean_doc_tokens(self) -> float:
        """Mean document length (tokens, without EOS) under uniform questions and templates: exact by linearity.

        Training leaves out the held-out questions, a share of at most len(held-out) / universe_size of the draws.
        """
        return float(self._expected_slot_lengths()[0].sum(axis=1).mean())

    @property
    def max_doc_tokens(self) -> int:
        """An upper bound on every document's length (without EOS): the longest piece in every slot."""
        return int(self._expected_slot_lengths()[1].sum(axis=1).max())

    # ------------------------------------------------------------------------------------------- evaluation

    def cut(self, kind: str) -> int:
        """Slot of the evaluation template where an item of `kind` splits into prompt and value."""
        slots = self.templates.slots[EVAL_TEMPLATE]
        if kind == "final":
            return int(self.templates.field_slots(EVAL_TEMPLATE, self.final_field)[-1])
        if kind == "full":  # the first field of the answer: its opening words (a literal) stay in the prompt
            offsets = self.templates.offsets[EVAL_TEMPLATE]
            answer = np.flatnonzero((offsets >= len(self.question_template)) & (slots < 0))
            return int(answer[0])
        raise ValueError(f"unknown item kind {kind!r}; expected one of {KINDS}")

    def eval_set(self, questions: np.ndarray) -> TaskEvalSet:
        """Items of every kind for the given questions under EVAL_TEMPLATE (see the module docstring)."""
        n = len(questions)
        pieces = self.pieces(questions, np.full(n, EVAL_TEMPLATE))
        empty = self.templates.empty
        prompts, values, prompt_len, value_len = [], [], [], []
        for kind in self.kinds:
            c = self.cut(kind)
            head, tail = pieces.copy(), pieces.copy()
            head[:, c:], tail[:, :c] = empty, empty
            pl, vl = self._lengths[head].sum(axis=1), self._lengths[tail].sum(axis=1) + 1
            prompts.append(pad_rows(self.table.gather(head), pl))
            tail_tokens = self.table.gather(tail)
            with_eos = np.insert(tail_tokens, np.cumsum(vl - 1), self.eos_id)  # EOS after each value
            values.append(pad_rows(with_eos, vl))
            prompt_len.append(pl)
            value_len.append(vl)
        return TaskEvalSet(
            prompt=_stack_padded(prompts),
            prompt_len=np.concatenate(prompt_len),
            value=_stack_padded(values),
            value_len=np.concatenate(value_len),
            question=np.tile(np.arange(n), len(self.kinds)),
            kind=np.repeat(np.arange(len(self.kinds)), n),
            kinds=self.kinds,
            questions=np.asarray(questions, np.int64),
        )


def _stack_padded(blocks: list[np.ndarray]) -> np.ndarray:
    width = max(b.shape[1] for b in blocks)
    return np.concatenate([np.pad(b, ((0, 0), (0, width - b.shape[1]))) for b in blocks])


def check_count(name: str, value: object, low: int) -> int:
    """An int >= low, else ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)
