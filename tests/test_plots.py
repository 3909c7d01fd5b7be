"""Every figure renders headless (Agg) from a results table and its fits, and degrades to a message on no data."""

import io
import warnings
from pathlib import Path

import matplotlib
import pytest
from matplotlib.figure import Figure

from analysis import plots
from analysis.curves import Curve
from analysis.fitting import FitWarning
from analysis.io import final_rows, load_results
from analysis.scaling import fit_web_loss, threshold_power_law
from analysis.thresholds import fit_sigmoid, fit_thresholds

matplotlib.use("Agg")
FIXTURE = Path(__file__).parent / "fixtures" / "results_small.csv"


@pytest.fixture(scope="module")
def data():
    df = load_results(FIXTURE)
    fin = final_rows(df)
    mix = fin[(fin["ratio"] > 0) & (fin["ratio"] < 1)]
    web = fin[fin["ratio"] == 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        ts = fit_thresholds(mix, "ratio", "size", group_x="params_non_embedding", n_boot=200, targets=())
        power = threshold_power_law(ts, n_boot=200)
        wf = fit_web_loss(web["params_non_embedding"], web["web_loss"], n_boot=200)
    return df, ts, power, wf


def _renders(fig: Figure) -> bytes:
    assert isinstance(fig, Figure) and fig.axes
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    assert buf.getvalue()[:4] == b"\x89PNG"
    return buf.getvalue()


def test_phase_diagram_with_threshold_line(data):
    df, ts, _, _ = data
    fig = plots.phase_diagram(df, ts)
    _renders(fig)
    line = [ln for ln in fig.axes[0].lines if ln.get_label() == "fitted r*"]
    assert len(line) == 1 and len(line[0].get_xdata()) == int(ts.table["ok"].sum())


def test_accuracy_curves_with_fit_and_band(data):
    df, ts, _, _ = data
    fig = plots.accuracy_curves(df[(df["ratio"] > 0) & (df["ratio"] < 1)], "ratio", "size", ts)
    _renders(fig)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and len(ax.collections) >= int(ts.table["ok"].sum())
    know = final_rows(df)[lambda d: d["ratio"] == 1]
    fit = fit_sigmoid(Curve.from_frame(know, "params_non_embedding"), n_boot=100)
    _renders(plots.accuracy_curves(know, "params_non_embedding", None, fit))


def test_threshold_scaling_loglog(data):
    _, ts, power, _ = data
    fig = plots.threshold_scaling(ts, power)
    _renders(fig)
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_yscale() == "log"


def test_exposures_attributes_and_web_loss(data):
    df, _, _, wf = data
    _renders(plots.accuracy_vs_exposures(df))
    _renders(plots.per_attribute(df))
    fig = plots.web_loss(final_rows(df)[lambda d: d["ratio"] == 0], wf)
    _renders(fig)
    assert any("L = " in t.get_text() for t in fig.axes[0].get_legend().get_texts())


def test_empty_inputs_give_a_message_not_a_crash(data):
    df, ts, _, _ = data
    none = df.iloc[:0]
    for fig in (plots.phase_diagram(none), plots.accuracy_vs_exposures(none), plots.per_attribute(none)):
        _renders(fig)
        assert any(t.get_text() for t in fig.axes[0].texts)
