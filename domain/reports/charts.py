"""The report's charts as inline SVG, drawn server-side by pygal: no JavaScript, no external asset, stable
output (fixed ids, no date comment), a <title> and a <desc> each for screen readers.

pygal's xml filter hook tidies its output for inlining: it drops the tooltip script and the coordinates only
its tooltips read, rounds coordinates to 0.1 px (a year of weekly points stays small), and labels the root."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pygal
from pygal.style import Style

from domain.reports.models import Report, RuleQuality, Week

WIDTH, HEIGHT = 800, 340
_NUMBER = re.compile(r"(\d+\.\d)\d+")
_GEOMETRY = {"d", "cx", "cy", "x", "y", "x1", "x2", "y1", "y2", "width", "height", "transform", "points"}
_FONT = 'system-ui,-apple-system,"Segoe UI",Roboto,sans-serif'
STYLE = Style(
    background="#ffffff", plot_background="#ffffff", foreground="#1f2328", foreground_strong="#1f2328",
    foreground_subtle="#57606a", opacity="1", opacity_hover="1", transition="0ms", font_family=_FONT,
    title_font_size=20, label_font_size=15, major_label_font_size=15, legend_font_size=16,
    value_font_size=15, value_label_font_size=15, tooltip_font_size=15,
    guide_stroke_color="#d0d7de", major_guide_stroke_color="#afb8c1", guide_stroke_dasharray="2,4",
    major_guide_stroke_dasharray="2,4", stroke_opacity="1", stroke_width="2",
    colors=("#0550ae", "#54aeff", "#bc4c00", "#fb8f44", "#8250df", "#1a7f37"))
_COMMON: dict[str, Any] = {"js": [], "disable_xml_declaration": True, "style": STYLE, "width": WIDTH,
                           "height": HEIGHT, "truncate_label": 28}


@dataclass(frozen=True)
class Charts:
    """Inline SVG documents, ready to be placed in the page as they are."""

    weekly: str  # MTTA and MTTR p50/p90 per ISO week (lines)
    severity: str  # incidents by severity (bars)
    noisiest: str  # the alert rules with the most notifications (horizontal bars)


def _tidy(chart_id: str, description: str) -> Callable[[Any], Any]:
    """An xml filter: the root gets role="img" and aria-labelledby its <title> and a new <desc>."""

    def apply(root: Any) -> Any:
        for parent in list(root.iter()):
            for child in list(parent):
                tag = child.tag if isinstance(child.tag, str) else ""
                kind = (child.get("class") or "").split() if tag else []
                if not tag or tag.endswith("script") or "tooltip-overlay" in kind or (
                        tag.endswith("desc") and kind[:1] in (["x"], ["y"])):
                    parent.remove(child)  # comments (one holds today's date), the tooltip script and its parts
            for key, value in parent.attrib.items():
                if key in _GEOMETRY:
                    parent.set(key, _NUMBER.sub(r"\1", value))
        title = next(c for c in root if isinstance(c.tag, str) and c.tag.endswith("title"))
        title.set("id", f"{chart_id}-title")
        desc = root.makeelement(title.tag.replace("title", "desc"), {"id": f"{chart_id}-desc"})
        desc.text = description
        root.insert(list(root).index(title) + 1, desc)
        root.set("role", "img")
        root.set("aria-labelledby", f"{chart_id}-title {chart_id}-desc")
        return root

    return apply


def _render(chart: Any, chart_id: str, description: str) -> str:
    chart.uuid = chart_id  # the root's id is chart-<uuid>: fixed, so the page is the same for the same report
    chart.add_xml_filter(_tidy(f"chart-{chart_id}", description))
    return str(chart.render(is_unicode=True))


def _unit(weeks: Sequence[Week]) -> tuple[str, float]:
    """Minutes, or hours when a p90 reaches three hours."""
    longest = max((v for w in weeks for v in (w.mtta_p90, w.mttr_p90) if v is not None), default=timedelta(0))
    return ("hours", 3600.0) if longest >= timedelta(hours=3) else ("minutes", 60.0)


def weekly_chart(weeks: Sequence[Week]) -> str:
    unit, per = _unit(weeks)

    def values(pick: Callable[[Week], timedelta | None]) -> list[float | None]:
        return [None if (v := pick(w)) is None else round(v.total_seconds() / per, 1) for w in weeks]

    chart = pygal.Line(title="MTTA and MTTR per week, p50 and p90", y_title=unit, x_label_rotation=30,
                       show_minor_x_labels=len(weeks) <= 13, x_labels_major_every=max(1, len(weeks) // 8),
                       legend_at_bottom=True, legend_at_bottom_columns=4, dots_size=3, allow_interruptions=True,
                       value_formatter=lambda v: f"{v:g}", no_data_text="No incidents", **_COMMON)
    chart.x_labels = [w.week for w in weeks]
    if weeks:
        chart.add("MTTA p50", values(lambda w: w.mtta_p50))
        chart.add("MTTA p90", values(lambda w: w.mtta_p90), stroke_style={"dasharray": "6,4"})
        chart.add("MTTR p50", values(lambda w: w.mttr_p50))
        chart.add("MTTR p90", values(lambda w: w.mttr_p90), stroke_style={"dasharray": "6,4"})
    span = f"from {weeks[0].week} to {weeks[-1].week}" if weeks else "with no weeks in the window"
    return _render(chart, "weekly", f"Lines of the median (p50) and 90th percentile (p90) time to acknowledge "
                                    f"(MTTA) and to resolve (MTTR) of each ISO week's incidents, in {unit}, "
                                    f"{span}. The same figures are in the weekly table.")


def _whole_numbers(top: int) -> list[int]:
    """Axis ticks for counts: whole numbers, about five of them, up to at least `top`."""
    step = max(1, -(-top // 5))
    return list(range(0, top + step, step)) if top else [0, 1]


def severity_chart(by_severity: dict[str, int]) -> str:
    chart = pygal.Bar(title="Incidents by severity", show_legend=False, value_formatter=lambda v: f"{v:g}",
                      no_data_text="No incidents", **_COMMON)
    chart.x_labels = list(by_severity)
    chart.y_labels = _whole_numbers(max(by_severity.values(), default=0))
    chart.add("Incidents", list(by_severity.values()))
    counts = ", ".join(f"{k}: {n}" for k, n in by_severity.items())
    return _render(chart, "severity", f"Bars of the number of incidents per severity: {counts}.")


def noisiest_chart(rules: Sequence[RuleQuality]) -> str:
    chart = pygal.HorizontalBar(title="Noisiest alert rules (notifications)", show_legend=False,
                                value_formatter=lambda v: f"{v:g}", no_data_text="No alert notifications",
                                **_COMMON)
    top_down = list(reversed(rules))  # pygal draws the first label at the bottom
    chart.x_labels = [r.rule for r in top_down]
    if rules:  # (pygal fails on axis labels without a series)
        chart.y_labels = _whole_numbers(max(r.notifications for r in rules))
        chart.add("Notifications", [r.notifications for r in top_down])
    listed = "; ".join(f"{r.rule}: {r.notifications}" for r in rules) or "none"
    return _render(chart, "noisiest", f"Bars of the alert notifications received per alert rule, most first: "
                                      f"{listed}.")


def render_charts(report: Report) -> Charts:
    return Charts(weekly=weekly_chart(report.weeks), severity=severity_chart(report.by_severity),
                  noisiest=noisiest_chart(report.alert_quality.noisiest))
