"""Simulated results tables with a known ground truth, for tests, the notebook and the committed fixture.

Regenerate the fixture with:  python -m analysis.simulate --out tests/fixtures/results_small.csv

Ground truth (class Truth):
- web loss of a web-only (r = 0) run: L(M) = E + A (M / 1e6)^-alpha, with 0.3% multiplicative noise;
- knowledge-only (r = 1) runs store min(c M, H_tot) bits: accuracy rises smoothly (linearly) with M, then saturates;
- mixtures: accuracy = lo + (hi - lo) sigmoid((log r - log r*) / w), with r*(M) the capacity-allocation theory's
  prediction for half of the facts stored (analysis.theory.predicted_ratio) times `miss`, and a per-seed jitter in
  log r*. Along training the threshold falls: 1 / r*(t) = 1 / r* + ln(t / T) / kappa after t of the T tokens of the
  main sweep, so the tokens needed to pass a given r grow exponentially in 1/r;
- counts: n_correct ~ Binomial per attribute (birth date harder), n_eval = 25 items per evaluated person, drawn
  independently (design effect 1, so acc_se is binomial; analysis.calibration simulates clustered items);
- sweep "exposure": two runs of one size at different ratios trained to the same exposures (column train.exposures).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.io import ATTRIBUTES, RESULTS_COLUMNS, size_label
from analysis.theory import PAPER_POOLS, predicted_ratio
from data_gen.synbio_fields import bits_per_person

ATTRIBUTE_FACTOR = np.array([0.8, 1.05, 1.05, 1.05, 1.05])  # birth date is the hardest attribute


@dataclass(frozen=True)
class Truth:
    """Parameters of the simulated world (sizes in non-embedding parameters)."""

    E: float = 2.0
    A: float = 1.5
    alpha: float = 0.3
    c: float = 1.0
    num_people: int = 30_000
    tokens_per_bio: float = 60.0
    fraction: float = 0.5
    miss: float = 1.0
    w: float = 0.08
    lo: float = 0.002
    hi: float = 0.92
    seed_jitter: float = 0.03
    kappa: float = 0.5
    eval_people: int = 200
    tokens: float = 2e9
    mix_sizes: tuple[float, ...] = (1e6, 2e6, 3e6, 5e6, 8e6)
    knowledge_sizes: tuple[float, ...] = (1.25e5, 2.5e5, 5e5, 1e6, 2e6, 3e6, 5e6, 8e6)
    ratios: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7)
    eval_fractions: tuple[float, ...] = (0.1, 0.2, 0.4, 0.7, 1.0)
    seeds: tuple[int, ...] = (0, 1)
    exposure_size: float = 3e6
    exposure_ratios: tuple[float, ...] = (0.1, 0.4)
    exposure_budget: float = 400.0

    @property
    def p(self) -> float:
        return float(np.log(2.0)) / (self.num_people * self.tokens_per_bio)

    @property
    def total_bits(self) -> float:
        return self.num_people * bits_per_person(PAPER_POOLS)

    def r_star(self, params) -> np.ndarray:
        """True mixture threshold: the theory's half-stored ratio times `miss` (NaN if unreachable)."""
        r = predicted_ratio(
            params, A=self.A, alpha=self.alpha, c=self.c, p=self.p, stored_bits=self.fraction * self.total_bits
        )
        return r * self.miss

    def web_loss(self, params) -> np.ndarray:
        return self.E + self.A * (np.asarray(params, float) / 1e6) ** (-self.alpha)


def _row(truth: Truth, rng, *, sweep, params, ratio, seed, tau, acc_true, budget, tokens_total, stored=None) -> dict:
    tokens = tau * tokens_total
    n_att = truth.eval_people * 5
    p_att = np.clip(acc_true * ATTRIBUTE_FACTOR / ATTRIBUTE_FACTOR.mean(), 0.0, 1.0)
    k_att = rng.binomial(n_att, p_att)
    n_correct, n_eval = int(k_att.sum()), 5 * n_att
    acc = n_correct / n_eval
    if stored is None:
        stored = float(np.clip((acc - truth.lo) / (truth.hi - truth.lo), 0, 1)) * truth.total_bits
    stored_total = stored * (1 + 0.01 * rng.standard_normal()) if ratio > 0 else 0.0
    web = truth.web_loss(max(params - stored / truth.c, 0.1 * params)) if ratio < 1 else truth.E + 4.0
    row = {
        "sweep": sweep,
        "run_id": f"{sweep}-{size_label(params)}-r{ratio:g}-s{seed}",
        "size": size_label(params),
        "params_total": params + 50_000 * 64,
        "params_non_embedding": params,
        "ratio": ratio,
        "num_people": truth.num_people,
        "seed": seed,
        "step": int(round(tokens / 65536)),
        "final": tau == truth.eval_fractions[-1],
        "tokens": tokens,
        "knowledge_tokens": ratio * tokens,
        "web_tokens": (1 - ratio) * tokens,
        "exposures": ratio * tokens / (truth.num_people * truth.tokens_per_bio),
        "acc": acc,
        "acc_se": float(np.sqrt(acc * (1 - acc) / n_eval)),  # items are independent draws here (design effect 1)
        "n_eval": n_eval,
        "n_correct": n_correct,
        "n_people": truth.eval_people,
        **{f"acc_{a}": k / n_att for a, k in zip(ATTRIBUTES, k_att, strict=True)},
        "value_loss": 0.05 + 3.0 * (1 - acc),
        "bits_stored": stored_total * truth.eval_people / truth.num_people,
        "web_loss": web * (1 + 0.003 * rng.standard_normal()),
        "wall_time_s": tokens / 1e6,
        "train.exposures": budget,
    }
    row["bits_per_param"] = stored_total / params
    row["bits_stored_total"] = stored_total
    return row


def simulate_results(truth: Truth | None = None, seed: int = 0) -> pd.DataFrame:
    """A results table drawn from `truth`: every RESULTS_COLUMNS column, bits_stored_total and train.exposures.

    As in mixlab.evaluate/train: bits_stored sums over the evaluated people, bits_stored_total extrapolates to the
    population and bits_per_param = bits_stored_total / params_non_embedding.
    """
    truth = truth or Truth()
    rng = np.random.default_rng(seed)
    rows = []

    def mix_acc(params, ratio, seed_jitter, tokens):
        inv = 1.0 / (truth.r_star(params) * np.exp(seed_jitter)) + np.log(tokens / truth.tokens) / truth.kappa
        if not (np.isfinite(inv) and inv > 0):
            return truth.lo
        z = (np.log(ratio) + np.log(inv)) / truth.w
        return truth.lo + (truth.hi - truth.lo) / (1 + np.exp(-z))

    for params in truth.mix_sizes:
        for s in truth.seeds:
            jitter = truth.seed_jitter * rng.standard_normal()
            for ratio in (0.0, *truth.ratios):
                for tau in truth.eval_fractions:
                    acc = mix_acc(params, ratio, jitter, tau * truth.tokens) if ratio > 0 else 0.0
                    sweep = "web" if ratio == 0 else "mix"
                    rows.append(
                        _row(
                            truth,
                            rng,
                            sweep=sweep,
                            params=params,
                            ratio=ratio,
                            seed=s,
                            tau=tau,
                            acc_true=acc,
                            budget=0.0,
                            tokens_total=truth.tokens,
                        )
                    )
    for params in truth.knowledge_sizes:
        for tau in truth.eval_fractions:
            stored = min(truth.c * params, truth.total_bits) * tau**0.5
            acc = truth.lo + (truth.hi - truth.lo) * stored / truth.total_bits
            rows.append(
                _row(
                    truth,
                    rng,
                    sweep="knowledge",
                    params=params,
                    ratio=1.0,
                    seed=0,
                    tau=tau,
                    acc_true=acc,
                    budget=0.0,
                    tokens_total=truth.tokens,
                    stored=stored,
                )
            )
    for ratio in truth.exposure_ratios:
        tokens_total = truth.exposure_budget * truth.num_people * truth.tokens_per_bio / ratio
        for tau in truth.eval_fractions:
            acc = mix_acc(truth.exposure_size, ratio, 0.0, tau * tokens_total)
            rows.append(
                _row(
                    truth,
                    rng,
                    sweep="exposure",
                    params=truth.exposure_size,
                    ratio=ratio,
                    seed=0,
                    tau=tau,
                    acc_true=acc,
                    budget=truth.exposure_budget,
                    tokens_total=tokens_total,
                )
            )
    df = pd.DataFrame(rows)
    return df[[*RESULTS_COLUMNS, "bits_stored_total", "train.exposures"]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="CSV or Parquet path to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    df = simulate_results(seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(out, index=False) if out.suffix in (".parquet", ".pq") else df.to_csv(
        out, index=False, float_format="%.8g"
    )
    print(f"wrote {len(df)} rows to {out}")


if __name__ == "__main__":
    main()
