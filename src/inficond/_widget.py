"""The app as an anywidget: an iframe whose ``#class=`` fragment follows the ``selected`` trait.

Kept apart from ``launch.py`` so that ``anywidget`` (and ipywidgets) load only when a widget is
asked for. Changing the fragment of the frame's ``src`` does not reload the page: the app reads
it on ``hashchange`` and commits the class to its selection.
"""

from __future__ import annotations

try:
    import anywidget
    import traitlets
except ImportError as e:  # pragma: no cover - exercised only without the optional extra
    raise ImportError("the inline widget needs anywidget: pip install anywidget "
                      "(or display the App itself for an <iframe>)") from e

_ESM = r"""
function fragment(name) { return name ? "#class=" + encodeURIComponent(name) : ""; }
function render({ model, el }) {
  const frame = document.createElement("iframe");
  frame.title = "InFiConD";
  frame.style.cssText = "width:100%;border:1px solid #ccd;border-radius:4px";
  const sync = () => {
    frame.style.height = model.get("height") + "px";
    const want = model.get("url") + fragment(model.get("selected"));
    if (frame.src !== want) frame.src = want;   // only the fragment changes: no reload
  };
  sync();
  model.on("change:selected", sync);
  model.on("change:height", sync);
  model.on("change:url", sync);
  el.appendChild(frame);
  return () => { model.off("change:selected", sync); model.off("change:height", sync); model.off("change:url", sync); };
}
export default { render };
"""


class AppWidget(anywidget.AnyWidget):
    _esm = _ESM
    url = traitlets.Unicode("").tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)
    height = traitlets.Int(820).tag(sync=True)
