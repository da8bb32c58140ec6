"""Report charts as SVG, drawn by pygal on the server.

pygal always writes its stylesheet as a ``<style>`` element inside the SVG (and one
``style`` attribute on its tooltip). The page's strict CSP (``style-src 'self'``) does
not govern an SVG loaded through ``<img src>``: that is a separate document whose policy
comes from its own response. So the chart routes send their own CSP that allows inline
styles and nothing else (:data:`SVG_CSP`); an ``<img>``-loaded SVG runs no script
anyway, and pygal's JavaScript is switched off (``js=[]``) so none is referenced; pygal
still writes a ``<script>`` holding its config as data, which :func:`_svg` removes, so
the image carries no script at all.
"""

from __future__ import annotations

from xml.etree import ElementTree

import pygal
from pygal.style import Style

# Only for the SVG responses: no script, no fetches, inline styles (pygal's) only.
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'"
FLOW_SERIES = (("issued", "Issued"), ("redeemed", "Redeemed"), ("reversed", "Reversed"),
               ("adjusted", "Adjusted"), ("expired", "Expired"))
# Dark text on white with distinct hues; the data table beside each chart carries the
# figures, so colour is never the only way to read them.
_STYLE = Style(background="white", plot_background="white", foreground="#222",
               foreground_strong="#000", foreground_subtle="#555",
               colors=("#1b6e3a", "#a4372b", "#6a4c93", "#1f5fa8", "#7a5a00"),
               font_family="system-ui, sans-serif")


def _config(title: str) -> dict:
    return {"title": title, "js": [], "style": _STYLE, "width": 720, "height": 360,
            "legend_at_bottom": True, "truncate_legend": -1, "x_label_rotation": 30,
            "show_minor_x_labels": True, "print_values": False}


def _svg(chart) -> bytes:
    """Render without any <script> element (pygal writes its config into one)."""
    tree = chart.render_tree()
    for parent in tree.iter():
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return ElementTree.tostring(tree, encoding="utf-8", xml_declaration=True)


def flows_svg(report: dict) -> bytes:
    chart = pygal.Bar(**_config(f"Coins per {report['grain']} ({report['scope']})"))
    chart.x_labels = [t["period"] for t in report["totals"]]
    for key, label in FLOW_SERIES:
        chart.add(label, [t[key] for t in report["totals"]])
    return _svg(chart)


def liability_svg(report: dict) -> bytes:
    chart = pygal.HorizontalBar(**_config("Outstanding coins by home region"))
    rows = (report["liability"] or {}).get("by_region", [])
    chart.x_labels = [r["region"].upper() for r in rows]
    chart.add("Outstanding coins", [r["balance"] for r in rows])
    return _svg(chart)
