"""The paper's mitigations and threshold-frequency groups end to end: subsampling (accuracy over everyone and over
the kept people, people learned), compact knowledge mixing, power-law groups with per-group frequency, bad values."""

import numpy as np
import pytest

from data_gen.synbio import subsample
from mixlab import run_folder, train
from mixlab.config import ConfigError, validate
from tests.test_train import tiny


def _run(data_dir, tmp_path, **overrides) -> list[dict]:
    c = tiny(data_dir, sharding__num_devices=1, train__num_steps=4, train__eval_every=2, **overrides)
    c.sharding.mesh.update(data=1, fsdp=1, tensor=1)
    c.eval.num_people = -1
    train.train_and_evaluate(c, str(tmp_path))
    return run_folder.read_eval_rows(str(tmp_path))


def test_subsampled_run_reports_everyone_and_the_kept_people(data_dir, tmp_path):
    rows = _run(data_dir, tmp_path, data__subsample=0.25)
    kept = subsample(32, 0.25, 0)
    for row in rows:
        assert row["n_people"] == 32 and row["n_people_kept"] == len(kept) == 8  # evaluated on everyone
        assert row["n_eval_kept"] == row["n_eval"] * 8 // 32
        assert 0 <= row["people_learned_kept"] <= row["people_learned"] <= 32
    assert rows[-1]["exposures"] > 0


def test_compact_mixing_trains_within_the_same_budget(data_dir, tmp_path):
    plain = _run(data_dir, tmp_path / "plain")
    ckm = _run(data_dir, tmp_path / "ckm", data__ckm_tau=0.3)
    assert [r["knowledge_tokens"] for r in ckm] == [r["knowledge_tokens"] for r in plain]  # the same budget r
    # the same tokens hold fewer biographies: exposures count documents, tuples being shorter
    assert ckm[-1]["exposures"] > plain[-1]["exposures"]
    assert ckm[-1]["n_eval"] == plain[-1]["n_eval"]  # evaluation stays on the natural-language prompts


def test_power_law_rows_carry_each_groups_accuracy_and_frequency(data_dir, tmp_path):
    rows = _run(data_dir, tmp_path, data__power_law_groups=4, data__power_law_beta=2.0)
    final = rows[-1]
    freq = [final[f"exposures_group_{k}"] for k in range(4)]
    assert freq[0] > freq[-1] > 0 and sorted(freq, reverse=True) == freq
    assert sum(final[f"n_eval_group_{k}"] for k in range(4)) == final["n_eval"]
    assert all(final[f"n_people_group_{k}"] == 8 for k in range(4))
    assert np.mean(freq) == pytest.approx(final["exposures"], rel=1e-9)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"data__ckm_tau": -0.1}, r"data.ckm_tau=-0.1: the compact tuples' share must be >= 0"),
        ({"data__ckm_tau": 0.1, "data__ratio": 0.0}, r"data.ckm_tau=0.1: needs knowledge in the mixture"),
        ({"data__ckm_tau": 0.1, "data__power_law_groups": 4}, r"data.ckm_tau=0.1: works on uniform SynBio only"),
        ({"data__subsample": 0.0}, r"data.subsample=0.0: the kept fraction of people must be in \(0, 1\]"),
        ({"data__subsample": 1.5}, r"data.subsample=1.5"),
    ],
)
def test_bad_mitigation_values_are_refused(data_dir, overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(tiny(data_dir, **overrides))
