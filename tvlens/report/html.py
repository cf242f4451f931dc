"""The report as one self-contained HTML page: plotly.js embedded once, a summary table, one section per figure.

The page records JavaScript errors in ``#tvlens-js-errors`` and, once loaded, how many figures it drew and
which did not (``data-figures`` / ``data-missing`` on ``<body>``): the headless-browser test reads them.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plotly.offline import get_plotlyjs

from tvlens._io import atomic_write_text
from tvlens._version import __version__

if TYPE_CHECKING:
    from tvlens.report.build import Report


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def render_html(report: Report) -> str:
    """The report as one HTML document with plotly.js embedded (works offline)."""
    columns = list(dict.fromkeys(key for row in report.summary for key in row))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = "".join("<tr>" + "".join(f"<td>{_format(row.get(c, ''))}</td>" for c in columns) + "</tr>"
                   for row in report.summary)
    body, toc, index = [], [], 0
    for group, sections in report.sections:
        anchor = f"group-{len(toc)}"
        toc.append(f'<li><a href="#{anchor}">{html.escape(group)}</a></li>')
        body.append(f'<h2 id="{anchor}">{html.escape(group)}</h2>')
        for section in sections:
            div = section.figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"figure-{index}",
                                         config={"displaylogo": False, "responsive": True})
            body.append(f'<section class="figure"><h3>{html.escape(section.title)}</h3>{div}'
                        f'<p class="explanation">{html.escape(section.explanation)}</p></section>')
            index += 1
    settings = html.escape(json.dumps(report.config.to_dict()))
    models = html.escape(", ".join(report.config.models))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tvlens report</title>
<script>window.tvlensErrors = [];
window.addEventListener("error", function (e) {{ window.tvlensErrors.push(String(e.message)); }});</script>
<script type="text/javascript">{get_plotlyjs()}</script>
<style>body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
table.summary {{ border-collapse: collapse; font-size: 0.9em; }}
table.summary td, table.summary th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
.explanation {{ color: #444; max-width: 900px; }} section.figure {{ margin-bottom: 2.5em; }}</style></head>
<body>
<h1>tvlens report</h1>
<p>Task vectors on {models}: {len(report.config.models)} model(s), {sum(len(s) for _, s in report.sections)}
figures, made in {report.seconds:.0f} s by tvlens {__version__} ({report.cache_hits} stages from the cache).
Accuracy for token models; squared error / D for regression models (lower is better).</p>
<table class="summary"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>
<ul>{"".join(toc)}</ul>
{"".join(body)}
<p><small>settings: {settings}</small></p>
<div id="tvlens-js-errors" hidden></div>
<script>window.addEventListener("load", function () {{
  setTimeout(function () {{
    document.getElementById("tvlens-js-errors").textContent = JSON.stringify(window.tvlensErrors);
    var figures = document.querySelectorAll("div[id^='figure-']");
    var missing = [];
    figures.forEach(function (f) {{ if (!f.querySelector("svg.main-svg")) {{ missing.push(f.id); }} }});
    document.body.setAttribute("data-figures", String(figures.length));
    document.body.setAttribute("data-missing", missing.join(","));
  }}, 500);
}});</script>
</body></html>
"""


def write_report(report: Report, path: str | os.PathLike) -> Path:
    """Write :func:`render_html` to ``path`` atomically (``-``: standard output)."""
    return atomic_write_text(path, render_html(report))


__all__ = ["render_html", "write_report"]
