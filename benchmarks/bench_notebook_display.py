"""The app inline in JupyterLab: an <iframe> (``display(app)``) vs the anywidget (``app.widget()``).

Drives a real JupyterLab in headless Chromium with a kernel from this project's venv:

1. a cell launches the app (``inficond.launch_app``) and warms the server's caches;
2. cells display the app as an iframe and as a widget, alternately (iframe, widget, iframe,
   widget); for each, the time from Shift+Enter to the selected class row being shown inside the
   frame is measured;
3. ``app.select(other)`` is run a few times: does each display follow, and how fast?

Also records what each way needs installed (site-packages bytes of anywidget and its
dependencies) and how many bytes each output adds to a saved notebook.

JupyterLab is not a project dependency. Install it in a throwaway venv and pass its ``jupyter``:
``python3.11 -m venv /tmp/jl && /tmp/jl/bin/pip install jupyterlab anywidget`` (anywidget there
provides the front-end extension; the kernel side is the project's venv).

Writes benchmarks/results/notebook_display.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_line  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDGET_PACKAGES = ["anywidget", "ipywidgets", "widgetsnbextension", "jupyterlab_widgets", "psygnal"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def site_bytes(names: list[str]) -> int:
    import importlib.util

    total = 0
    for n in names:
        spec = importlib.util.find_spec(n)
        if spec is None or not spec.submodule_search_locations:
            continue
        for root in spec.submodule_search_locations:
            total += sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())
    share = Path(sys.prefix) / "share" / "jupyter"
    if share.exists():
        total += sum(p.stat().st_size for p in share.rglob("*") if p.is_file())
    return total


def notebook(ws: str, classes: list[str]) -> dict:
    import nbformat as nbf

    nb = nbf.v4.new_notebook()
    c = nbf.v4.new_code_cell
    warm = ("import inficond, urllib.request\n"
            f"app = inficond.launch_app({ws!r})\n"
            "for p in ['api/summary', 'api/performance?split=val', 'api/concepts/map', 'api/provenance']:\n"
            "    urllib.request.urlopen(app.url + p).read()\n"
            f"for k in {classes!r}:\n"
            "    urllib.request.urlopen(app.url + f'api/classes/{k}/concepts?k=10&sort=influence').read()\n"
            "print('ready', app.url)")
    nb.cells = [c(warm),
                c(f"app.select({classes[0]!r}); app"),
                c("w = app.widget(); w"),
                c("from IPython.display import HTML; HTML(app.iframe_html())"),
                c("from IPython.display import display; display(w)")]
    for k in classes[1:] * 2:
        nb.cells.append(c(f"app.select({k!r}); None"))
    nb.metadata["kernelspec"] = {"name": "inficond-bench", "display_name": "inficond (bench)", "language": "python"}
    return nb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workspace", default="workspaces/dev")
    ap.add_argument("--jupyter", required=True, help="the jupyter executable of a venv with jupyterlab + anywidget")
    ap.add_argument("--out", default=str(RESULTS / "notebook_display"))
    a = ap.parse_args()

    import nbformat
    from playwright.sync_api import sync_playwright

    from inficond.session import Session

    s = Session(a.workspace)
    perf = s.performance("val")["classes"]
    names = [c["name"] for c in perf]
    classes = [names[1], names[4], names[7]]  # three different classes: the select targets
    idx = {c["name"]: c["class_idx"] for c in perf}

    tmp = Path(tempfile.mkdtemp(prefix="inficond-nb-"))
    kdir = tmp / "kernels" / "share" / "jupyter" / "kernels" / "inficond-bench"
    kdir.mkdir(parents=True)
    (kdir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "inficond (bench)", "language": "python"}))
    nbformat.write(notebook(str(Path(a.workspace).resolve()), classes), tmp / "measure.ipynb")
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_PATH": str(tmp / "kernels" / "share" / "jupyter"),
           "JUPYTER_CONFIG_DIR": str(tmp / "config"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime")}
    lab = subprocess.Popen([a.jupyter, "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
                            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp}",
                            "--LabApp.news_url=None", "--allow-root"],
                           env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "lab.log", "w"))
    rows: list[dict] = []
    selects: list[dict] = []
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=LAUNCH_ARGS)
            page = b.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/lab/tree/measure.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
            try:  # the kernel chooser may ask once: accept the notebook's kernel
                page.locator(".jp-Dialog .jp-mod-accept").click(timeout=15_000)
            except Exception:  # noqa: BLE001 - no dialog
                pass
            cells = page.locator(".jp-Notebook .jp-Cell")

            def run(i: int) -> float:
                cells.nth(i).locator(".jp-InputArea-editor").click()
                t0 = time.perf_counter()
                page.keyboard.press("Control+Enter")
                page.wait_for_function(
                    "(i) => { const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];"
                    " const p = c && c.querySelector('.jp-InputPrompt'); return p && /\\[\\d+\\]/.test(p.textContent); }",
                    arg=i, timeout=120_000)
                return t0

            def frame_shows(n: int, cls: str, t0: float) -> float:
                fl = page.frame_locator("iframe[title=InFiConD]").nth(n)
                fl.locator(f'[data-testid=class-row][data-class-idx="{idx[cls]}"][aria-selected=true]').wait_for(timeout=120_000)
                return time.perf_counter() - t0

            try:
                run(0)
            except Exception:
                page.screenshot(path=str(Path(a.out).with_suffix(".fail.png")))
                raise
            kinds = ["iframe", "widget", "iframe", "widget"]
            for n, kind in enumerate(kinds):
                t0 = run(n + 1)
                try:
                    rows.append({"display": kind, "n": n,
                                 "seconds_to_selected_row": round(frame_shows(n, classes[0], t0), 3)})
                except Exception:
                    page.screenshot(path=str(Path(a.out).with_suffix(".fail.png")))
                    raise
            for j, k in enumerate(classes[1:] * 2):
                t0 = run(5 + j)
                res: dict = {"class": k, **{f"{kind}{n}": None for n, kind in enumerate(kinds)}}
                sel = f'[data-testid=class-row][data-class-idx="{idx[k]}"][aria-selected=true]'
                while time.perf_counter() - t0 < 10:  # poll every frame at once: each gets its own time
                    for n, kind in enumerate(kinds):
                        if res[f"{kind}{n}"] is None and page.frame_locator("iframe[title=InFiConD]").nth(n).locator(sel).count():
                            res[f"{kind}{n}"] = round(time.perf_counter() - t0, 3)
                    if all(res[f"{kind}{n}"] is not None for n, kind in enumerate(kinds)):
                        break
                    time.sleep(0.05)
                selects.append(res)
            page.screenshot(path=str(tmp / "lab.png"))
            shutil.copy(tmp / "lab.png", Path(a.out).with_suffix(".png"))
            page.keyboard.press("Control+s")
            time.sleep(2)
            b.close()
    finally:
        lab.terminate()
        lab.wait(timeout=30)

    saved = nbformat.read(tmp / "measure.ipynb", as_version=4)
    out_bytes = {k: len(json.dumps(saved.cells[i].get("outputs", []))) for k, i in (("iframe", 1), ("widget", 2))}
    widget_state = len(json.dumps(saved.metadata.get("widgets", {})))
    footprint = site_bytes(WIDGET_PACKAGES)

    def med(kind):
        v = [r["seconds_to_selected_row"] for r in rows if r["display"] == kind]
        return statistics.median(v) if v else None

    follow = {kind: sum(1 for r in selects for key, v in r.items() if key.startswith(kind) and v is not None)
              for kind in ("iframe", "widget")}
    total = {kind: sum(1 for r in selects for key in r if key.startswith(kind)) for kind in ("iframe", "widget")}
    result = {"machine": machine_line(), "workspace": a.workspace, "first_render": rows, "selects": selects,
              "output_bytes": out_bytes, "widget_state_bytes": widget_state, "widget_install_bytes": footprint}
    Path(a.out).with_suffix(".json").write_text(json.dumps(result, indent=2))
    md = [
        "# The app inline in JupyterLab: iframe vs anywidget",
        "",
        f"Machine: {machine_line()}. Workspace `{a.workspace}`; JupyterLab in headless Chromium; kernel from the "
        "project venv. Made by `benchmarks/bench_notebook_display.py`.",
        "",
        "| | iframe (`display(app)`) | anywidget (`app.widget()`) |",
        "|---|---|---|",
        f"| Shift+Enter → selected class shown in the frame, median s ({len(rows) // 2} each) | {med('iframe'):.2f} | {med('widget'):.2f} |",
        f"| later `app.select(...)` followed by the shown frame | {follow['iframe']}/{total['iframe']} | {follow['widget']}/{total['widget']} |",
        f"| output saved in the .ipynb, bytes | {out_bytes['iframe']:,} | {out_bytes['widget']:,} (+ widget state {widget_state:,}) |",
        f"| extra packages to install | none | {footprint / 1e6:.1f} MB (anywidget, ipywidgets, widgetsnbextension, jupyterlab_widgets, psygnal) |",
        "",
        "The first-render times are two of each, alternating (iframe first, on a colder server and "
        "browser cache), on a shared machine: read them as \"about the same\". What differs is whether a "
        "later `app.select` reaches the frame already shown, and what must be installed.",
        "",
        "Select latencies (s from Ctrl+Enter on `app.select(...)` to the row selected in each frame; – = did not follow):",
        "",
        "| class | " + " | ".join(f"{k}{n}" for n, k in enumerate(["iframe", "widget", "iframe", "widget"])) + " |",
        "|---|---|---|---|---|",
    ]
    for r in selects:
        md.append(f"| {r['class']} | " + " | ".join("–" if r[f"{k}{n}"] is None else f"{r[f'{k}{n}']:.2f}"
                                                    for n, k in enumerate(["iframe", "widget", "iframe", "widget"])) + " |")
    Path(a.out).with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
