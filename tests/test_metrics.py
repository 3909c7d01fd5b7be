"""MFU accounting: the peak table is keyed by device kind, FLOPs per token follow the stated convention."""

import json

import jax
import pytest

from mixlab import metrics


@pytest.mark.parametrize(
    "kind, dtype, peak",
    [
        ("NVIDIA H100 80GB HBM3", "bfloat16", 989e12),
        ("NVIDIA H100 PCIe", "bfloat16", 756e12),
        ("NVIDIA H200", "bfloat16", 989e12),
        ("NVIDIA A100-SXM4-80GB", "bfloat16", 312e12),
        ("NVIDIA A100-SXM4-40GB", "float32", 156e12),
        ("NVIDIA L40S", "bfloat16", 362e12),
        ("NVIDIA L4", "bfloat16", 121e12),
        ("TPU v4", "bfloat16", 275e12),
        ("TPU v5 lite", "bfloat16", 197e12),
        ("TPU v5p", "bfloat16", 459e12),
        ("TPU v6 lite", "bfloat16", 918e12),
        ("Some Future Accelerator", "bfloat16", None),
    ],
)
def test_peak_table_by_device_kind(kind, dtype, peak):
    assert metrics.table_peak_flops(kind, dtype) == peak


def test_cpu_peak_is_measured():
    peak, source = metrics.device_peak_flops(jax.devices()[0], "float32")
    assert source == "measured_cpu_matmul" and 1e8 < peak < 1e13


def test_flops_per_token():
    # 6 x (non-embedding + output projection) + 12 x layers x L x D
    assert metrics.flops_per_token(1000, 100, 8, 2, 16) == 6 * (1000 + 800) + 12 * 2 * 16 * 8


def test_timers_and_writer(tmp_path):
    timers = metrics.Timers({"train": 2.0})
    with timers.phase("eval"):
        pass
    timers.add("train", 1.0)
    assert timers.as_dict()["time_train_s"] == 3.0 and timers.as_dict()["time_eval_s"] >= 0.0
    with pytest.raises(KeyError, match="unknown timer phase 'typo'"):
        timers.add("typo", 1.0)
    writer = metrics.MetricsWriter(str(tmp_path), "metrics", tensorboard=True)
    writer.write({"step": 1, "loss": 2.5, "mfu": None})
    writer.close()
    assert metrics.read_jsonl(str(tmp_path / "metrics.jsonl")) == [{"step": 1, "loss": 2.5, "mfu": None}]
    assert any((tmp_path / "tb" / "metrics").iterdir())
    assert json.loads((tmp_path / "metrics.jsonl").read_text())["loss"] == 2.5
