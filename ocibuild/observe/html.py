"""A build as one self-contained web page (``ocibuild report BUILD --html FILE``,
``ocibuild build --report-html FILE``).

The page is rendered from the build's report (:mod:`ocibuild.observe.report`, the document
``build.json`` holds): a timeline with one lane per stage (stages that ran in parallel
side by side, cache hits marked), each step's time split, its layer's size and the
largest files, and for a failed build where it failed. Everything is inline (CSS, a
little JavaScript, SVG); its Content-Security-Policy forbids every network load. The
page is complete without JavaScript; the script only filters and sorts the step table.
"""

from __future__ import annotations

import html
import time
from typing import Any

from ocibuild.observe.log import human_size

# the report's time split, in the order a step goes through them; and their colours
PHASES = (
    ("key", "#9e9e9e"),
    ("prepare_rootfs", "#8d6e63"),
    ("runtime", "#1e88e5"),
    ("copy", "#00897b"),
    ("diff", "#fb8c00"),
    ("hash", "#fdd835"),
    ("layer_write", "#8e24aa"),
    ("cleanup", "#6d4c41"),
    ("compress", "#43a047"),
)
CACHE_WORDS = {
    "hit": "cached",
    "miss": "ran",
    "off": "ran (no cache)",
    "none": "no cache key",
    "failed": "FAILED",
}
LARGEST_SHOWN = 15
TIMELINE_WIDTH = 1000
LANE_LABEL = 140
LANE_HEIGHT = 30

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; form-action 'none'; base-uri 'none'"
)

STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 24px 48px;color:#222}
h1{font-size:20px;margin:18px 0 4px}h2{font-size:16px;margin:28px 0 8px}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12.5px}
.summary{color:#555}.summary b{color:#222}
.status-succeeded{color:#2e7d32}.status-failed{color:#c62828}.status-running{color:#f9a825}
.failure{border:2px solid #c62828;background:#ffebee;padding:10px 14px;margin:14px 0}
.failure pre{white-space:pre-wrap;margin:6px 0 0}
svg text{font-size:11px;font-family:ui-monospace,monospace}
.lane-label{fill:#333}.axis{stroke:#bbb}.tick{fill:#777}
rect.bar{stroke:#333;stroke-width:.5}rect.bar.hit{fill:url(#hatch)}
rect.miss{fill:#1e88e5}rect.off{fill:#7e57c2}rect.none{fill:#bdbdbd}rect.failed{fill:#e53935}
a:hover rect.bar{stroke-width:2}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #e0e0e0;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#fafafa;position:sticky;top:0}td.num{text-align:right;white-space:nowrap}
tr.failed td{background:#ffebee}tr.hit td.instr{color:#555}
tr:target td{background:#fff8e1}
.badge{display:inline-block;padding:0 6px;border-radius:8px;font-size:12px;white-space:nowrap}
.badge.hit{background:#c8e6c9}.badge.miss{background:#bbdefb}.badge.off{background:#d1c4e9}
.badge.none{background:#eee}.badge.failed{background:#e53935;color:#fff}
.reason{color:#666;font-size:12px}.err{color:#c62828;white-space:pre-wrap}
.legend span{display:inline-block;margin-right:12px;font-size:12px}
.legend i{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px}
.sizebar{background:#8e24aa;height:10px;display:inline-block;vertical-align:middle}
.controls{margin:6px 0}body.hide-hits tr.hit{display:none}
details summary{cursor:pointer;color:#1565c0;font-size:12px}
"""

SCRIPT = """
(function () {
  var body = document.body;
  var hide = document.getElementById('hide-hits');
  hide.addEventListener('change', function () {
    body.classList.toggle('hide-hits', hide.checked);
  });
  var sort = document.getElementById('sort-time');
  var tbody = document.querySelector('#steps tbody');
  var order = Array.prototype.slice.call(tbody.rows);
  sort.addEventListener('change', function () {
    var rows = order.slice();
    if (sort.checked) {
      rows.sort(function (a, b) {
        return parseFloat(b.dataset.seconds) - parseFloat(a.dataset.seconds);
      });
    }
    rows.forEach(function (row) { tbody.appendChild(row); });
  });
  body.dataset.ready = 'yes';
})();
"""


def render(doc: dict[str, Any]) -> str:
    """The page for one build report (``build.json``)."""
    steps = _with_stages([_normalised(s) for s in doc.get("steps") or []])
    title = f"ocibuild build {doc.get('id', '')}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{_e(title)}</title><style>{STYLE}</style></head>",
        f'<body data-status="{_e(str(doc.get("status", "")))}">',
        f"<h1>{_e(title)}</h1>",
        _summary(doc, steps),
        _failure(doc, steps),
        "<h2>Timeline</h2>",
        _legend_cache(),
        _timeline(doc, steps),
        "<h2>Steps</h2>",
        _legend_phases(),
        '<div class="controls"><label><input type="checkbox" id="hide-hits"> hide cached '
        'steps</label> <label><input type="checkbox" id="sort-time"> slowest first</label>'
        "</div>",
        _step_table(steps),
        "<h2>Layers</h2>",
        _layers(steps),
        "<h2>Largest files</h2>",
        _largest(steps),
        f"<script>{SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def write(doc: dict[str, Any], path: str) -> None:
    """Write the page of ``doc`` to ``path``."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(render(doc))


# -- pieces ----------------------------------------------------------------------------------
def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _normalised(step: dict[str, Any]) -> dict[str, Any]:
    """A step with its display status: ``failed`` for the step that failed."""
    out = dict(step)
    out["status"] = "failed" if step.get("error") else str(step.get("cache") or "none")
    out["seconds"] = float(step.get("seconds") or 0.0)
    return out


def _with_stages(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A failed build records the FROM lines it announced without their stage: such a
    step belongs to the stage of the step after it."""
    following = ""
    for step in reversed(steps):
        if step.get("stage"):
            following = str(step["stage"])
        elif str(step.get("instruction", "")).upper().startswith("FROM"):
            step["stage"] = following
    return steps


def _seconds(value: float) -> str:
    if value >= 60:
        return f"{int(value // 60)}m{value % 60:04.1f}s"
    return f"{value:.2f}s" if value >= 0.01 else f"{value * 1000:.1f}ms"


def _summary(doc: dict[str, Any], steps: list[dict[str, Any]]) -> str:
    status = str(doc.get("status", "unknown"))
    totals = doc.get("totals") or {}
    started = doc.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(started))) if started else "?"
    items = [
        f'<b class="status-{_e(status)}">{_e(status)}</b>',
        f"started {_e(when)}",
        f"<b>{_seconds(float(totals.get('seconds') or 0.0))}</b>",
        f"{len(steps)} steps, {totals.get('hits', 0)} cached, {totals.get('misses', 0)} ran",
        f"{totals.get('layers', 0)} layers, {human_size(int(totals.get('layer_bytes') or 0))}",
    ]
    lines = [" &middot; ".join(items)]
    if doc.get("image_id"):
        tags = ", ".join(doc.get("tags") or [])
        lines.append(
            f"image <code>{_e(doc['image_id'])}</code>" + (f" ({_e(tags)})" if tags else "")
        )
    lines.append(
        f"Dockerfile <code>{_e(doc.get('dockerfile') or '(standard input)')}</code>, "
        f"context <code>{_e(doc.get('context') or '')}</code>"
    )
    asked = []
    if doc.get("target"):
        asked.append(f"target <code>{_e(doc['target'])}</code>")
    if doc.get("platform"):
        asked.append(f"platform <code>{_e(doc['platform'])}</code>")
    for key, value in sorted((doc.get("build_args") or {}).items()):
        asked.append(f"<code>--build-arg {_e(key)}={_e(value)}</code>")
    if doc.get("ocibuild_version"):
        asked.append(f"ocibuild {_e(doc['ocibuild_version'])}")
    if asked:
        lines.append(", ".join(asked))
    return '<div class="summary">' + "<br>".join(lines) + "</div>"


def failed_step(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The step a failed build stopped at (None: it failed before any step, or did not)."""
    for step in doc.get("steps") or []:
        if step.get("error"):
            return dict(step)
    return None


def _failure(doc: dict[str, Any], steps: list[dict[str, Any]]) -> str:
    if doc.get("status") != "failed":
        return ""
    step = next((s for s in steps if s["status"] == "failed"), None)
    if step is None:
        where = "before any step ran"
        detail = str(doc.get("error") or "")
    else:
        line = f", line {step['line']}" if step.get("line") else ""
        stage = f" of stage {_e(step['stage'])}" if step.get("stage") else ""
        where = (
            f'at <a href="#step-{step["step"]}">step {step["step"]}</a>{stage}{line}: '
            f"<code>{_e(step.get('instruction', ''))}</code>"
        )
        if step.get("exit_code") is not None:
            where += f" (exit code {_e(step['exit_code'])})"
        detail = str(step.get("error") or doc.get("error") or "")
    return (
        f'<div class="failure" id="failure"><b>The build failed {where}</b>'
        f"<pre>{_e(detail)}</pre></div>"
    )


def _legend_cache() -> str:
    colours = {"hit": "#a5d6a7", "miss": "#1e88e5", "off": "#7e57c2", "none": "#bdbdbd"}
    colours["failed"] = "#e53935"
    items = "".join(
        f'<span><i style="background:{colours[k]}"></i>{_e(v)}</span>'
        for k, v in CACHE_WORDS.items()
    )
    return f'<div class="legend">{items}</div>'


def _legend_phases() -> str:
    items = "".join(f'<span><i style="background:{c}"></i>{_e(n)}</span>' for n, c in PHASES)
    return f'<div class="legend">time split: {items}</div>'


def _placed(steps: list[dict[str, Any]]) -> list[tuple[dict[str, Any], float]]:
    """Each step with its start (seconds into the build). A step recorded without one (a
    FROM, or a record from before starts were kept) starts where the previous step of its
    stage ended (or the next one starts)."""
    out: list[tuple[dict[str, Any], float]] = []
    ends: dict[str, float] = {}
    for i, step in enumerate(steps):
        stage = str(step.get("stage") or "")
        start = step.get("start")
        if start is None:
            start = ends.get(stage)
            if start is None:
                later = (
                    s.get("start") for s in steps[i + 1 :] if str(s.get("stage") or "") == stage
                )
                start = next((float(s) for s in later if s is not None), 0.0)
        start = float(start)
        ends[stage] = max(ends.get(stage, 0.0), start + step["seconds"])
        out.append((step, start))
    return out


def _timeline(doc: dict[str, Any], steps: list[dict[str, Any]]) -> str:
    if not steps:
        return "<p>No step ran.</p>"
    placed = _placed(steps)
    lanes: list[str] = []
    for step in steps:
        stage = str(step.get("stage") or "")
        if stage not in lanes:
            lanes.append(stage)
    total: float = max(
        float((doc.get("totals") or {}).get("seconds") or 0.0),
        max(start + s["seconds"] for s, start in placed),
        1e-3,
    )
    span = TIMELINE_WIDTH - LANE_LABEL - 10
    height = LANE_HEIGHT * len(lanes) + 24

    def x(t: float) -> float:
        return LANE_LABEL + span * t / total

    out = [
        f'<svg id="timeline" width="{TIMELINE_WIDTH}" height="{height}" '
        f'viewBox="0 0 {TIMELINE_WIDTH} {height}" role="img" aria-label="step timeline">',
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#c8e6c9"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#43a047" stroke-width="3"/></pattern></defs>',
    ]
    for i, stage in enumerate(lanes):
        y = i * LANE_HEIGHT
        out.append(
            f'<text class="lane-label" x="4" y="{y + 19}">stage {_e(stage or "?")}</text>'
            f'<line class="axis" x1="{LANE_LABEL}" x2="{TIMELINE_WIDTH - 10}" '
            f'y1="{y + LANE_HEIGHT}" y2="{y + LANE_HEIGHT}"/>'
        )
    for step, start in placed:
        lane = lanes.index(str(step.get("stage") or ""))
        y = lane * LANE_HEIGHT + 5
        width = max(3.0, span * step["seconds"] / total)
        status = step["status"]
        tip = (
            f"[{step.get('step')}] {step.get('instruction', '')}\n"
            f"{CACHE_WORDS.get(status, status)}, {_seconds(step['seconds'])}, "
            f"started at {_seconds(start)}"
        )
        label = ""
        if width > 22:
            label = (
                f'<text x="{x(start) + 3:.1f}" y="{y + 14}" fill="#fff" '
                f'pointer-events="none">{_e(step.get("step"))}</text>'
            )
        out.append(
            f'<a href="#step-{_e(step.get("step"))}"><rect class="bar {_e(status)}" '
            f'data-step="{_e(step.get("step"))}" x="{x(start):.1f}" y="{y}" '
            f'width="{width:.1f}" height="{LANE_HEIGHT - 10}" rx="2">'
            f"<title>{_e(tip)}</title></rect>{label}</a>"
        )
    base = LANE_HEIGHT * len(lanes)
    for k in range(6):
        t = total * k / 5
        out.append(
            f'<text class="tick" x="{x(t):.1f}" y="{base + 16}" '
            f'text-anchor="{"start" if k == 0 else "end" if k == 5 else "middle"}">'
            f"{_seconds(t)}</text>"
        )
    out.append("</svg>")
    return "\n".join(out)


def _split_bar(step: dict[str, Any]) -> str:
    split = step.get("time") or {}
    total = sum(float(v or 0.0) for v in split.values())
    if total <= 0:
        return ""
    width = 160
    out = [f'<svg class="split" width="{width}" height="12" viewBox="0 0 {width} 12">']
    x = 0.0
    parts = []
    for name, colour in PHASES:
        value = float(split.get(name) or 0.0)
        if value <= 0:
            continue
        w = width * value / total
        out.append(
            f'<rect x="{x:.2f}" y="0" width="{w:.2f}" height="12" fill="{colour}">'
            f"<title>{_e(name)}: {_seconds(value)}</title></rect>"
        )
        parts.append(f"{name} {_seconds(value)}")
        x += w
    out.append("</svg>")
    return "".join(out) + f'<div class="reason">{_e(", ".join(parts))}</div>'


def _layer_cell(step: dict[str, Any]) -> str:
    layer = step.get("layer")
    if not layer:
        return ""
    if layer.get("size") is None:
        return "missing from the store"
    text = human_size(int(layer["size"]))
    counts = [
        f"+{layer[k]}"
        if k == "files_added"
        else f"~{layer[k]}"
        if k == "files_changed"
        else f"-{layer[k]}"
        for k in ("files_added", "files_changed", "files_deleted")
        if k in layer
    ]
    if counts:
        text += (
            f'<div class="reason" title="files added, changed, deleted">{" ".join(counts)}</div>'
        )
    largest = layer.get("largest_added") or []
    if largest:
        rows = "".join(
            f"<li><code>{_e(f['path'])}</code> {human_size(int(f['size']))}</li>" for f in largest
        )
        text += f"<details><summary>largest files</summary><ul>{rows}</ul></details>"
    return text


def _step_table(steps: list[dict[str, Any]]) -> str:
    out = [
        '<table id="steps"><thead><tr><th>#</th><th>stage</th><th>instruction</th>'
        "<th>cache</th><th>time</th><th>time split</th><th>layer</th></tr></thead><tbody>"
    ]
    for step in steps:
        status = step["status"]
        reason = step.get("reason") or ""
        error = ""
        if step.get("error"):
            code = step.get("exit_code")
            error = f'<div class="err">{_e(step["error"])}'
            error += f" (exit code {_e(code)})</div>" if code is not None else "</div>"
        line = f' <span class="reason">line {_e(step["line"])}</span>' if step.get("line") else ""
        out.append(
            f'<tr id="step-{_e(step.get("step"))}" class="step {_e(status)}" '
            f'data-seconds="{step["seconds"]:.6f}">'
            f'<td class="num">{_e(step.get("step"))}</td><td>{_e(step.get("stage") or "")}</td>'
            f'<td class="instr"><code>{_e(step.get("instruction", ""))}</code>{line}{error}</td>'
            f'<td><span class="badge {_e(status)}">{_e(CACHE_WORDS.get(status, status))}</span>'
            f'<div class="reason">{_e(reason)}</div></td>'
            f'<td class="num">{_seconds(step["seconds"])}</td>'
            f"<td>{_split_bar(step)}</td><td>{_layer_cell(step)}</td></tr>"
        )
    out.append("</tbody></table>")
    return "\n".join(out)


def _layers(steps: list[dict[str, Any]]) -> str:
    layers = [
        (s, int(s["layer"]["size"]))
        for s in steps
        if s.get("layer") and s["layer"].get("size") is not None
    ]
    if not layers:
        return "<p>No step made a layer.</p>"
    biggest = max(size for _, size in layers) or 1
    out = [
        '<table id="layers"><thead><tr><th>#</th><th>step</th><th>size</th><th></th>'
        "<th>diffID</th></tr></thead><tbody>"
    ]
    for step, size in layers:
        width = max(1, int(300 * size / biggest))
        cached = " (cached)" if step["status"] == "hit" else ""
        out.append(
            f'<tr><td class="num"><a href="#step-{_e(step.get("step"))}">{_e(step.get("step"))}'
            f"</a></td><td><code>{_e(step.get('instruction', ''))}</code>{cached}</td>"
            f'<td class="num">{human_size(size)}</td>'
            f'<td><span class="sizebar" style="width:{width}px"></span></td>'
            f'<td class="mono">{_e(str(step["layer"].get("diff_id", ""))[7:19])}</td></tr>'
        )
    out.append("</tbody></table>")
    return "\n".join(out)


def _largest(steps: list[dict[str, Any]]) -> str:
    files = [
        (int(f["size"]), str(f["path"]), step)
        for step in steps
        for f in (step.get("layer") or {}).get("largest_added") or []
    ]
    if not files:
        return "<p>No file sizes were recorded for this build.</p>"
    files.sort(key=lambda item: (-item[0], item[1]))
    out = [
        '<table id="largest"><thead><tr><th>size</th><th>path</th><th>written by</th></tr>'
        "</thead><tbody>"
    ]
    for size, path, step in files[:LARGEST_SHOWN]:
        out.append(
            f'<tr><td class="num">{human_size(size)}</td><td><code>{_e(path)}</code></td>'
            f'<td><a href="#step-{_e(step.get("step"))}">step {_e(step.get("step"))}</a> '
            f"<code>{_e(step.get('instruction', ''))}</code></td></tr>"
        )
    out.append("</tbody></table>")
    return "\n".join(out)
