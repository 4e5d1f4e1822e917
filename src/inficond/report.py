"""A per-class report of the student as one self-contained HTML file, readable offline.

``class_report(session, cls)`` returns the HTML; ``write_class_report(session_or_workspace, cls,
out)`` writes it (``inficond report WS CLASS --out report.html``). Everything is inline: the CSS,
the charts (SVG drawn here) and the concept patches (JPEG data URIs), so the file can be mailed
or archived and opened with no server and no network.

Sections: the metrics of teacher and student on val and on the held-out test split (with the
alignment subsets), the top concepts by influence with their patches and what-if AP curves, and
the tuning history of the class (every step on the path to the current student, with its val and
test change). Numbers carry ``data-value`` attributes holding the exact figure, for tools and tests.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
from pathlib import Path
from typing import Any, Optional

__all__ = ["class_report", "write_class_report"]

METRICS = ("ap", "precision", "recall", "f1", "accuracy")
METRIC_LABELS = {"ap": "AP", "precision": "Precision", "recall": "Recall", "f1": "F1", "accuracy": "Accuracy"}
SUBSET_LABELS = {
    "both_correct": "both correct",
    "only_teacher_correct": "only teacher correct",
    "only_student_correct": "only student correct",
    "both_wrong": "both wrong",
}
BLUE, ORANGE, GREY = "#2f6db5", "#e07b20", "#8a96a3"

_CSS = """
:root { --blue: #2f6db5; --orange: #e07b20; --muted: #667381; --line: #dfe4ea; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2630; margin: 0; background: #f5f7f9; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; min-height: 100vh; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.meta { color: var(--muted); font-size: 12.5px; } .meta b { color: #1d2630; font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: middle; }
th { font-size: 12px; color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; }
.kpis { display: flex; gap: 14px; flex-wrap: wrap; margin: 14px 0 4px; }
.kpi { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; min-width: 150px; }
.kpi .v { font-size: 20px; font-weight: 650; } .kpi .l { font-size: 12px; color: var(--muted); }
.up { color: var(--blue); } .down { color: var(--orange); } .muted { color: var(--muted); }
.bar { display: inline-block; height: 10px; border-radius: 2px; vertical-align: middle; }
.patches img { width: 56px; height: 56px; object-fit: cover; border-radius: 3px; margin-right: 3px; border: 1px solid var(--line); }
.word { font-weight: 600; }
.note { font-size: 12.5px; color: var(--muted); margin: 4px 0 10px; }
svg text { font: 10px system-ui, sans-serif; fill: #667381; }
@media print { body { background: #fff; } main { padding: 0; } }
"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _fmt(v: Optional[float], digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _num(v: Optional[float], digits: int = 3, cls: str = "num", **attrs: str) -> str:
    """A table cell with the rounded figure shown and the exact one in ``data-value``."""
    extra = "".join(f' data-{k}="{_e(a)}"' for k, a in attrs.items())
    dv = "" if v is None else f' data-value="{float(v)!r}"'
    return f'<td class="{cls}"{dv}{extra}>{_fmt(v, digits)}</td>'


def _delta(v: Optional[float]) -> str:
    if v is None:
        return '<span class="muted">–</span>'
    c = "up" if v > 0 else "down" if v < 0 else "muted"
    return f'<span class="{c}">{v:+.3f}</span>'


def _polyline(xs, ys, x0, x1, y0, y1, w, h, pad) -> str:
    sx = lambda x: pad + (x - x0) / ((x1 - x0) or 1) * (w - 2 * pad)  # noqa: E731
    sy = lambda y: h - pad - (y - y0) / ((y1 - y0) or 1) * (h - 2 * pad)  # noqa: E731
    return " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys))


def whatif_svg(grid: list[float], values: list[Optional[float]], current: float, w: int = 220, h: int = 64) -> str:
    """AP as one influence is swept (line), the current influence (dot and rule), as inline SVG."""
    pts = [(x, y) for x, y in zip(grid, values) if y is not None]
    if not pts:
        return '<span class="muted">no curve</span>'
    xs, ys = zip(*pts)
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 0.02:  # a flat curve: show it flat in the middle, not as noise blown up
        y0, y1 = y0 - 0.01, y1 + 0.01
    pad = 6
    line = _polyline(xs, ys, x0, x1, y0, y1, w, h, pad)
    cx = pad + (current - x0) / ((x1 - x0) or 1) * (w - 2 * pad)
    # AP at the current influence: the grid point nearest to it
    cy_val = min(pts, key=lambda p: abs(p[0] - current))[1]
    cy = h - pad - (cy_val - y0) / ((y1 - y0) or 1) * (h - 2 * pad)
    zero = pad + (0 - x0) / ((x1 - x0) or 1) * (w - 2 * pad) if x0 < 0 < x1 else None
    parts = [f'<svg width="{w}" height="{h + 12}" viewBox="0 0 {w} {h + 12}" role="img" '
             f'aria-label="AP {_fmt(min(ys))} to {_fmt(max(ys))} as the influence goes from {x0:.2f} to {x1:.2f}">',
             f'<rect x="0" y="0" width="{w}" height="{h}" fill="#f8fafc" stroke="#e6ebf0"/>']
    if zero is not None:
        parts.append(f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{pad}" y2="{h - pad}" stroke="#d5dbe2" stroke-dasharray="2,2"/>')
    parts += [
        f'<polyline points="{line}" fill="none" stroke="{BLUE}" stroke-width="1.6"/>',
        f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{pad}" y2="{h - pad}" stroke="{ORANGE}" stroke-width="1"/>',
        f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{ORANGE}"/>',
        f'<text x="2" y="{h + 10}">{x0:.2f}</text>',
        f'<text x="{w - 2}" y="{h + 10}" text-anchor="end">{x1:.2f}</text>',
        f'<text x="{w / 2:.0f}" y="{h + 10}" text-anchor="middle">AP {_fmt(min(ys))}–{_fmt(max(ys))}</text>',
        "</svg>",
    ]
    return "".join(parts)


def history_svg(points: list[tuple[int, Optional[float], Optional[float]]], w: int = 520, h: int = 120) -> str:
    """Val (blue) and test (grey) AP after each step on the path, as inline SVG."""
    vals = [v for _, a, b in points for v in (a, b) if v is not None]
    if len(points) < 2 or not vals:
        return ""
    y0, y1 = min(vals), max(vals)
    if y1 - y0 < 0.02:
        y0, y1 = y0 - 0.01, y1 + 0.01
    pad = 14
    xs = list(range(len(points)))
    parts = [f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="AP per step">',
             f'<rect x="0" y="0" width="{w}" height="{h}" fill="#f8fafc" stroke="#e6ebf0"/>']
    for idx, (name, color) in enumerate((("val", BLUE), ("test", GREY))):
        seq = [(x, p[1 + idx]) for x, p in zip(xs, points) if p[1 + idx] is not None]
        if len(seq) >= 2:
            line = _polyline([s[0] for s in seq], [s[1] for s in seq], 0, len(points) - 1, y0, y1, w, h, pad)
            parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts.append(f'<text x="{w - 60}" y="{14 + 12 * idx}" style="fill:{color}">— {name} AP</text>')
    parts += [f'<text x="3" y="{pad - 3}">{y1:.3f}</text>', f'<text x="3" y="{h - 3}">{y0:.3f}</text>', "</svg>"]
    return "".join(parts)


def _patch_img(session: Any, patch: dict) -> str:
    try:
        data = session.patch_path(patch["patch_id"]).read_bytes()
    except (OSError, KeyError):
        return ""
    mime = "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
    b64 = base64.b64encode(data).decode("ascii")
    return (f'<img src="data:{mime};base64,{b64}" alt="patch of image {patch["image_idx"]}" '
            f'title="similarity {patch["similarity"]:.3f}">')


def _class_history(session: Any, k: int) -> list[dict]:
    """Steps on the path to the current student: the distillation root and the steps tuning class ``k``."""
    prov = session.provenance()
    steps = [s for s in prov["steps"] if s["on_head_path"] and (s["kind"] != "tune" or s["class_idx"] == k)]
    return sorted(steps, key=lambda s: s["state_id"])


def class_report(session: Any, cls: Any, k: int = 10, generated_at: Optional[str] = None) -> str:
    """The report of class ``cls`` (name or index) of the current student, as one HTML string.

    Parameters
    ----------
    session : Session
    cls : str or int
    k : int, default 10
        Number of top concepts (by influence) shown with patches and what-if curves.
    generated_at : str, optional
        Timestamp printed in the header (default: now, UTC).
    """
    ki = session.class_idx(cls)
    perf = {s: session.performance(s) for s in ("val", "test")}
    row = {s: perf[s]["classes"][ki] for s in perf}
    name = row["val"]["name"]
    top = session.class_concepts(ki, k=k, sort="influence")
    summary = session.summary()
    history = _class_history(session, ki)
    when = generated_at or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    enc = (summary.get("encoder") or {}).get("name", "?")
    teacher = summary.get("teacher") or {}
    teacher_name = (next((str(teacher[key]) for key in ("name", "model", "kind", "path") if teacher.get(key)), "?")
                    if isinstance(teacher, dict) else str(teacher))
    out: list[str] = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>InFiConD report: {_e(name)}</title><style>{_CSS}</style></head><body><main>",
        f'<h1>Student report: <span data-field="class">{_e(name)}</span></h1>',
        f'<div class="meta">workspace <b>{_e(session.path)}</b> · student state <b data-field="state">'
        f'{summary["student"]["state_id"]}</b> · {top["nonzero"]} non-zero concepts · teacher <b>{_e(teacher_name)}</b>'
        f' · encoder <b>{_e(enc)}</b> · generated {_e(when)}</div>',
    ]
    if row["val"]["excluded"]:
        out.append(f'<p class="note">This class is left out of mean metrics: {_e(row["val"]["reason"])}.</p>')

    # -- metrics ------------------------------------------------------------------------
    v_s, t_s = row["val"]["student"]["ap"], row["test"]["student"]["ap"]
    v_t, t_t = row["val"]["teacher"]["ap"], row["test"]["teacher"]["ap"]
    out.append('<div class="kpis">')
    for label, v, field in (("student AP, val", v_s, "kpi-val"), ("student AP, test (held out)", t_s, "kpi-test"),
                            ("teacher AP, val", v_t, "kpi-teacher-val"),
                            ("fidelity (val)", row["val"]["fidelity"], "kpi-fidelity")):
        dv = "" if v is None else f' data-value="{float(v)!r}"'
        out.append(f'<div class="kpi" data-field="{field}"{dv}><div class="v">{_fmt(v)}</div><div class="l">{label}</div></div>')
    out.append("</div>")
    out.append('<h2 id="metrics">Metrics</h2>')
    out.append('<p class="note">Predictions at logit &gt; 0. Val drives the interactive analysis; test is carved from '
               'train and never used to choose anything, so it shows whether tuning generalises.</p>')
    out.append('<table class="metrics"><thead><tr><th>split</th><th>model</th><th class="num">positives</th>'
               + "".join(f'<th class="num">{METRIC_LABELS[m]}</th>' for m in METRICS) + "</tr></thead><tbody>")
    for split in ("val", "test"):
        for model in ("teacher", "student"):
            out.append(f'<tr data-split="{split}" data-model="{model}"><td>{split}</td><td>{model}</td>'
                       f'<td class="num">{row[split]["n_pos"]}</td>'
                       + "".join(_num(row[split][model][m], metric=m) for m in METRICS) + "</tr>")
    out.append("</tbody></table>")
    out.append('<h2 id="alignment">Teacher–student alignment</h2><table class="alignment"><thead><tr><th>split</th>'
               '<th>subset</th><th class="num">n</th>'
               + "".join(f'<th class="num">{lab}</th>' for lab in SUBSET_LABELS.values()) + "</tr></thead><tbody>")
    for split in ("val", "test"):
        al = row[split]["alignment"]
        for sub, label in (("pos", "positives"), ("neg", "negatives")):
            s = al[sub]
            out.append(f'<tr data-split="{split}" data-subset="{sub}"><td>{split}</td><td>{label}</td>'
                       f'<td class="num">{s["n"]}</td>'
                       + "".join(f'<td class="num" data-category="{c}" data-value="{s["counts"][c]}">{s["counts"][c]}'
                                 f' <span class="muted">({100 * s["rates"][c]:.0f}%)</span></td>' for c in SUBSET_LABELS)
                       + "</tr>")
    out.append("</tbody></table>")

    # -- concepts -----------------------------------------------------------------------
    out.append(f'<h2 id="concepts">Top {len(top["concepts"])} concepts by influence</h2>')
    out.append('<p class="note">Influence is the weight of the concept in the class\'s linear student (blue raises '
               'the class score, orange lowers it). The curve shows val AP as that one influence is swept, the '
               'others held; the orange dot marks the current value. Discrepancy P/N: how much more the concept is '
               'present where the student is wrong than where it is right, on positives / negatives.</p>')
    scale = top["max_abs_influence"] or 1.0
    out.append('<table class="concepts"><thead><tr><th>#</th><th>concept</th><th class="num">influence</th><th></th>'
               '<th class="num">disc. P</th><th class="num">disc. N</th><th>what-if AP</th><th>patches</th></tr></thead><tbody>')
    for c in top["concepts"]:
        width = max(2, int(80 * abs(c["influence"]) / scale))
        color = BLUE if c["influence"] >= 0 else ORANGE
        imgs = "".join(_patch_img(session, p) for p in c["patches"])
        out.append(
            f'<tr data-concept="{_e(c["word"])}"><td>{c["rank"]}</td><td class="word">{_e(c["word"])}</td>'
            + _num(c["influence"], metric="influence")
            + f'<td><span class="bar" style="width:{width}px;background:{color}"></span></td>'
            + _num(c["discrepancy_p"]) + _num(c["discrepancy_n"])
            + f'<td>{whatif_svg(c["whatif"]["grid"], c["whatif"]["ap"], c["whatif"]["current"])}</td>'
            + f'<td class="patches">{imgs}</td></tr>')
    out.append("</tbody></table>")

    # -- history ------------------------------------------------------------------------
    tuned = [s for s in history if s["kind"] == "tune"]
    out.append(f'<h2 id="history">Tuning history ({len(tuned)} step{"" if len(tuned) == 1 else "s"} on this class)</h2>')
    if not tuned:
        out.append('<p class="note">The student of this class is the distilled one: no tuning step on the current path.</p>')
    else:
        total_v = sum((s["val"]["after"]["ap"] or 0) - (s["val"]["before"]["ap"] or 0) for s in tuned)
        total_t = sum((s["test"]["after"]["ap"] or 0) - (s["test"]["before"]["ap"] or 0) for s in tuned)
        out.append(f'<p class="note">Change over all steps: val AP {_delta(total_v)}, test AP {_delta(total_t)}.'
                   + (' <b class="down">Val rose while test fell: the tuning may be fitting val.</b>'
                      if total_v > 0 > total_t else "") + "</p>")
        points = [(tuned[0]["state_id"], tuned[0]["val"]["before"]["ap"], tuned[0]["test"]["before"]["ap"])]
        points += [(s["state_id"], s["val"]["after"]["ap"], s["test"]["after"]["ap"]) for s in tuned]
        out.append(history_svg(points))
    out.append('<table class="history"><thead><tr><th>state</th><th>when</th><th>step</th>'
               '<th class="num">val AP</th><th class="num">Δ val</th><th class="num">test AP</th><th class="num">Δ test</th>'
               "</tr></thead><tbody>")
    for s in history:
        if s["kind"] == "tune":
            votes = ", ".join(f'<span class="{"up" if i["direction"] == "up" else "down"}">'
                              f'{"▲" if i["direction"] == "up" else "▼"} {_e(i["word"])}</span>' for i in s["instructions"])
            vb, va = s["val"]["before"]["ap"], s["val"]["after"]["ap"]
            tb, ta = s["test"]["before"]["ap"], s["test"]["after"]["ap"]
            dv = None if va is None or vb is None else va - vb
            dt = None if ta is None or tb is None else ta - tb
            out.append(f'<tr data-state="{s["state_id"]}" data-kind="tune"><td>{s["state_id"]}</td>'
                       f'<td>{_e(s["created_at"])}</td><td>{votes}</td>'
                       + _num(va, field="val-after") + f'<td class="num">{_delta(dv)}</td>'
                       + _num(ta, field="test-after") + f'<td class="num">{_delta(dt)}</td></tr>')
        else:
            out.append(f'<tr data-state="{s["state_id"]}" data-kind="{_e(s["kind"])}"><td>{s["state_id"]}</td>'
                       f'<td>{_e(s["created_at"])}</td><td class="muted">{_e(s["kind"])} (sparse students fitted)</td>'
                       '<td></td><td></td><td></td><td></td></tr>')
    out.append("</tbody></table>")
    out.append('<p class="note">Made by <code>inficond report</code>. Self-contained: open it offline in any browser.</p>')
    out.append("</main></body></html>")
    return "\n".join(out)


def write_class_report(session_or_workspace: Any, cls: Any, out: str | Path | None = None, k: int = 10) -> Path:
    """Write :func:`class_report` to ``out`` (default ``WS/reports/<class>.html``) and return the path."""
    from inficond.session import Session

    session = Session(session_or_workspace) if isinstance(session_or_workspace, (str, Path)) else session_or_workspace
    text = class_report(session, cls, k=k)
    name = session.ws.class_names[session.class_idx(cls)]
    path = Path(out) if out is not None else session.path / "reports" / f"{name}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
