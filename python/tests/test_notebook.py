"""examples/survey.ipynb, executed headless: any cell's error fails the test."""

from __future__ import annotations

from conftest import REPO, need


def test_the_example_notebook_runs():
    nbformat = need("nbformat")
    nbclient = need("nbclient")
    need("ipykernel")
    nb = nbformat.read(REPO / "examples" / "survey.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(REPO / "examples")}},
    )
    client.execute()  # raises CellExecutionError on a cell's error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    pages = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    # The survey and the series, each shown inline as the page in a frame.
    assert len(pages) == 2 and all(p.startswith("<iframe") for p in pages)
    text = "".join(o.get("text", "") for o in outputs)
    assert "read in place: True" in text
