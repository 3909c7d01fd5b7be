"""The walkthrough notebook is committed without outputs and executes against the fixture."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "analysis" / "notebooks" / "fit_thresholds.ipynb"


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_executes_on_the_fixture(monkeypatch):
    monkeypatch.setenv("MIXLAB_RESULTS", str(ROOT / "tests" / "fixtures" / "results_small.csv"))
    monkeypatch.setenv("MIXLAB_N_BOOT", "300")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "r* = 0.2" in text and "[supported] There is a phase transition (a jump) in the mixing ratio r" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4
