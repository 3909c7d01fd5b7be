"""Every figure renders headless (Agg) from a results table and its fits, and degrades to a message on no data."""

import io
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis import plots
from analysis.calibration import FREQ_SIZES, GROWTH_TRUTH, growth_runs, power_law_groups_table
from analysis.curves import Curve
from analysis.fitting import FitWarning
from analysis.frequency import fit_frequency
from analysis.growth import growth_by_size, tokens_to_target
from analysis.io import final_rows, load_results
from analysis.jump import jump_test
from analysis.scaling import fit_power_law, fit_web_loss, threshold_power_law
from analysis.thresholds import fit_sigmoid, fit_thresholds
from analysis.verdicts import main_budget

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


def _grid_rows(df: pd.DataFrame) -> pd.DataFrame:
    fin = final_rows(df)
    return main_budget(fin[(fin["ratio"] > 0) & (fin["ratio"] < 1)])


def _tick_labels(axis) -> list[str]:
    return [t.get_text() for t in axis.get_ticklabels()]


def test_grid_figures_show_the_grid_not_the_longer_equal_exposure_run(data):
    df = data[0]
    assert (df["sweep"] == "exposure").any()
    grid = _grid_rows(df)
    fig = plots.per_attribute(df)
    _renders(fig)
    drawn = 0
    for ax in fig.axes:
        size = ax.get_title().removeprefix("size ")
        for line in ax.lines:
            expected = grid[grid["size"] == size].groupby("ratio")[f"acc_{line.get_label()}"].mean()
            np.testing.assert_allclose(line.get_xdata(), expected.index)
            np.testing.assert_allclose(line.get_ydata(), expected.to_numpy())
            drawn += 1
    assert drawn == grid["size"].nunique() * 5
    # The check has teeth: averaging the equal-exposure run in would change the 3M, r = 0.1 cell.
    fin = final_rows(df)
    cell = fin[(fin["size"] == "3M") & (fin["ratio"] == 0.1)]
    assert len(cell) > len(grid[(grid["size"] == "3M") & (grid["ratio"] == 0.1)])
    dashed = [ln for ax in plots.accuracy_vs_exposures(df).axes for ln in ax.lines if ln.get_linestyle() == "--"]
    assert len(dashed) == df.loc[df["sweep"] == "exposure", "run_id"].nunique()
    heat = plots.phase_diagram(df)
    values = [float(t.get_text()) for t in heat.axes[0].texts]
    table = grid.pivot_table(index="size", columns="ratio", values="acc").reindex(plots.size_order(grid)[::-1])
    np.testing.assert_allclose(values, table.to_numpy().ravel(), atol=0.005)


def test_log_axes_tick_at_the_data_with_plain_labels(data):
    df, ts, power, wf = data
    grid = _grid_rows(df)
    by_r = plots.accuracy_curves(grid, "ratio", "size", ts).axes[0]
    np.testing.assert_allclose(by_r.get_xticks(), sorted(grid["ratio"].unique()))
    assert _tick_labels(by_r.xaxis) == [f"{r:g}" for r in sorted(grid["ratio"].unique())]
    by_m = plots.accuracy_curves(grid, "params_non_embedding", "ratio").axes[0]
    assert _tick_labels(by_m.xaxis) == plots.size_order(grid)
    scaling = plots.threshold_scaling(ts, power).axes[0]
    assert _tick_labels(scaling.xaxis) == list(ts.table["size"])
    assert len(scaling.get_yticks()) >= 3
    fig = plots.accuracy_vs_exposures(df)
    labels = _tick_labels(fig.axes[0].xaxis) + _tick_labels(fig.axes[-1].yaxis)  # panel x, colour bar
    assert len(labels) >= 6 and not any("e" in t or "$" in t for t in labels)
    web = final_rows(df)[lambda d: d["ratio"] == 0]
    assert _tick_labels(plots.web_loss(web, wf).axes[0].xaxis) == plots.size_order(web)


def test_labels_say_how_many_seeds(data):
    df, ts, _, _ = data
    assert "mean of 2 seeds" in plots.phase_diagram(df, ts).axes[0].get_title()
    one = _grid_rows(df).groupby(["size", "ratio"]).head(1)
    assert "(1 seed per point)" in plots.per_attribute(one)._suptitle.get_text()
    know = final_rows(df)[lambda d: d["ratio"] == 1]
    assert "points: 1 seed" in plots.accuracy_curves(know, "params_non_embedding", None).axes[0].get_title()


def test_plot_jump_test_draws_data_smooth_fit_and_change_point():
    x = np.array([0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8])
    k = np.array([1, 0, 2, 1, 85, 90, 88, 91])
    curve = Curve.from_arrays(np.repeat(x, 2), np.repeat(k, 2), np.full(16, 100), np.tile([0, 1], 8), x_name="ratio")
    test = jump_test(curve, n_draws=19)
    assert test.tested and test.jump_model == "step"
    xs, kk, nn = curve.pooled()
    np.testing.assert_allclose(
        test.jump_curve(xs), [kk[:4].sum() / nn[:4].sum()] * 4 + [kk[4:].sum() / nn[4:].sum()] * 4
    )
    fig = plots.plot_jump_test(curve, test, label="size 3M")
    _renders(fig)
    ax = fig.axes[0]
    assert f"LR = {test.lr:.2f}" in ax.get_title() and f"p = {test.p_value:.3f}" in ax.get_title()
    smooth, jump = ax.lines[-2:]
    np.testing.assert_allclose(smooth.get_ydata(), test.smooth_curve(smooth.get_xdata()))
    np.testing.assert_allclose(jump.get_ydata(), test.jump_curve(jump.get_xdata()))
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert test.smooth_family in legend and "pooled counts of 2 seeds" in legend
    np.testing.assert_allclose(ax.get_xticks(), x)
    short = Curve.from_arrays(x[:3], k[:3], np.full(3, 100), x_name="ratio")
    fig = plots.plot_jump_test(short, jump_test(short))
    _renders(fig)
    assert "not run" in fig.axes[0].get_title() and "fewer than" in fig._supxlabel.get_text()


def test_plot_width_vs_size_with_power_law():
    widths = pd.DataFrame(
        {
            "size": ["t57k", "t100k", "t224k", "t400k"],
            "params": [5.7e4, 1.0e5, 2.24e5, 4.0e5],
            "width": [3.0, 2.4, 1.9, 1.5],
            "width_lo": [2.5, 2.0, 1.6, 1.3],
            "width_hi": [3.6, 2.9, 2.3, 1.8],
        }
    )
    ci = widths[["width_lo", "width_hi"]].to_numpy()
    fit = fit_power_law(widths["params"], widths["width"], y_ci=ci, n_boot=200, x_name="M", y_name="width")
    fig = plots.plot_width_vs_size(widths, fit)
    _renders(fig)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert _tick_labels(ax.xaxis) == list(widths["size"]) and len(ax.get_yticks()) >= 3
    assert any("power law, k = " in t.get_text() for t in ax.get_legend().get_texts())
    _renders(plots.plot_width_vs_size(widths.iloc[:0]))


def test_threshold_frequency_vs_size_draws_points_law_and_theory():
    table = power_law_groups_table(FREQ_SIZES, lambda m: 300.0 * (m / 1e6) ** -1.3, np.random.default_rng(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        fs = fit_frequency(table, alpha=0.3, n_boot=200)
    fig = plots.threshold_frequency_vs_size(fs)
    _renders(fig)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log" and _tick_labels(ax.xaxis) == list(fs.table["size"])
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert "power law, k = " in legend and "theory slope -(alpha+1) = -1.30" in legend
    theory = next(ln for ln in ax.lines if ln.get_linestyle() == "--")
    slope = np.polyfit(np.log(theory.get_xdata()), np.log(theory.get_ydata()), 1)[0]
    assert slope == pytest.approx(-1.3)
    _renders(plots.threshold_frequency_vs_size(fit_frequency(table.iloc[:0])))


def test_tokens_to_target_vs_ratio_draws_runs_censoring_and_both_laws():
    tokens = tokens_to_target(growth_runs("exponential", GROWTH_TRUTH["exponential"], np.random.default_rng(3)), 0.4)
    fig = plots.tokens_to_target_vs_ratio(tokens, growth_by_size(tokens))
    _renders(fig)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "1 / r" and "exponential (dAIC" in ax.get_title()
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert "never reached" in legend and "exponential: b = " in legend and "power law: b = " in legend
    arrows = next(ln for ln in ax.lines if ln.get_marker() == "^")
    assert len(arrows.get_xdata()) == (tokens["censoring"] == "right").sum()
    _renders(plots.tokens_to_target_vs_ratio(tokens.iloc[:0], {}))
