"""The canary's reports: report.json for machines, report.md and report.html for people.

report.md holds the verdict, the metric table and text histograms (readable in a terminal, in
KFP's Markdown viewer and in Airflow's logs); report.html holds the same tables with two inline SVG
plots (latency distributions of both versions, and the per-request prediction differences). No
plotting library: the SVG is written here, a few dozen lines.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfship import storage

COLORS = {"baseline": "#1f77b4", "candidate": "#d62728", "difference": "#2ca02c"}


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-" if value is None or math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _bins(series: Mapping[str, Sequence[float]], bins: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    values = np.concatenate([np.asarray(v, dtype=np.float64) for v in series.values() if len(v)] or [np.zeros(1)])
    low, high = np.quantile(values, [0.0, 0.99]) if values.size > 20 else (values.min(), values.max())
    if high <= low:
        high = low + (abs(low) * 0.01 or 1.0)
    edges = np.linspace(low, high, bins + 1)
    counts = {
        name: np.histogram(np.clip(np.asarray(v, dtype=np.float64), low, high), edges)[0] for name, v in series.items()
    }
    return edges, counts


def text_histogram(series: Mapping[str, Sequence[float]], unit: str, bins: int = 12, width: int = 28) -> str:
    """Side-by-side text histograms of each series over shared bins (the last bin holds the top 1 %)."""
    edges, counts = _bins(series, bins)
    peak = max((int(c.max()) for c in counts.values() if c.size), default=1) or 1
    names = list(series)
    step = (edges[-1] - edges[0]) / bins
    scale = max(abs(edges[0]), abs(edges[-1]), 1e-300)
    digits = min(12, max(4, 1 + math.ceil(math.log10(scale / step)))) if step > 0 else 4
    lines = [f"{unit:>{2 * digits + 7}}  " + "  ".join(f"{name:<{width + 6}}" for name in names)]
    for i in range(bins):
        label = f"{edges[i]:.{digits}g} - {edges[i + 1]:.{digits}g}"
        cells = []
        for name in names:
            count = int(counts[name][i])
            cells.append(f"{'#' * round(width * count / peak):<{width}} {count:5d}")
        lines.append(f"{label:>{2 * digits + 7}}  " + "  ".join(cells))
    return "\n".join(lines)


def svg_histogram(series: Mapping[str, Sequence[float]], title: str, unit: str, bins: int = 30) -> str:
    """An inline SVG: overlaid histograms with an x axis in `unit` and a legend."""
    width, height, left, bottom, top = 560, 240, 48, 36, 28
    edges, counts = _bins(series, bins)
    peak = max((int(c.max()) for c in counts.values() if c.size), default=1) or 1
    plot_w, plot_h = width - left - 12, height - top - bottom
    bar_w = plot_w / bins
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(title)}" font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333"/>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{peak}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    for name, count in counts.items():
        color = COLORS.get(name, "#555")
        for i, c in enumerate(count):
            if c:
                h = plot_h * c / peak
                parts.append(
                    f'<rect x="{left + i * bar_w:.1f}" y="{top + plot_h - h:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                    f'height="{h:.1f}" fill="{color}" fill-opacity="0.45"/>'
                )
    for fraction in (0.0, 0.5, 1.0):
        x = left + fraction * plot_w
        value = edges[0] + fraction * (edges[-1] - edges[0])
        parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 14}" text-anchor="middle">{value:.4g}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle">{html.escape(unit)}</text>')
    for k, name in enumerate(counts):
        x = left + plot_w - 150 + 80 * k
        parts.append(f'<rect x="{x}" y="6" width="10" height="10" fill="{COLORS.get(name, "#555")}" fill-opacity="0.6"/>')
        parts.append(f'<text x="{x + 14}" y="15">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _plot_series(report: Mapping[str, Any]) -> tuple[dict[str, list[float]], dict[str, list[float]], str]:
    latency = report.get("_latency", {})
    latency_ms = {
        "baseline": [1000 * v for v in latency.get("baseline_s", [])],
        "candidate": [1000 * v for v in latency.get("candidate_s", [])],
    }
    differences: dict[str, list[float]] = {}
    title = "prediction difference (candidate - baseline)"
    for name, info in report.get("_outputs", {}).items():
        if info.get("differences"):
            differences = {"difference": info["differences"]}
            title = f"per-request difference of {name!r} (candidate - baseline)"
            break
    return latency_ms, differences, title


def _metric_rows(report: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for m in report["metrics"]:
        rows.append([
            m["name"], m["classification"], _fmt(m["estimate"]),
            f"[{_fmt(m['low'])}, {_fmt(m['high'])}]",
            f"[{_fmt(m['lower_limit'])}, {_fmt(m['upper_limit'])}]",
            _fmt(m["p_value"], 3), str(m["n"]), ("yes" if m["critical"] else "no") + f" / {_fmt(m['weight'])}",
        ])
    return rows


_METRIC_HEADER = ["metric", "result", "estimate", "interval", "allowed", "p", "n", "critical / weight"]


def _side_rows(report: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for side in ("baseline", "candidate"):
        s = report[side]
        lat = s.get("latency_ms", {})
        errors = ", ".join(f"{k}: {v}" for k, v in s.get("errors_by_code", {}).items()) or "none"
        rows.append([
            side, s["ref"], str(s["version"]), str(s.get("requests", 0)), _fmt(s.get("error_rate")),
            _fmt(lat.get("p50")), _fmt(lat.get("p95")), _fmt(lat.get("p99")), errors,
        ])
    return rows


_SIDE_HEADER = ["", "asked", "version", "requests", "error rate", "p50 ms", "p95 ms", "p99 ms", "errors"]


def markdown(report: Mapping[str, Any]) -> str:
    """report.md: verdict, reasons, versions, metric table, text histograms."""
    def table(header: list[str], rows: list[list[str]]) -> str:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        return "\n".join(lines)

    latency_ms, differences, diff_title = _plot_series(report)
    parts = [
        f"# Canary {report['verdict']}: {report['model']} {report['candidate']['ref']} vs {report['baseline']['ref']}",
        "",
        f"Score {_fmt(report['score'])} (pass at {_fmt(report['judge']['pass_score'])}); "
        f"{report['requests']['pairs_answered']} of {report['requests']['asked']} paired requests answered "
        f"by both versions in {_fmt(report['requests']['seconds'], 3)} s against {report['target']}. "
        f"Action: {report['action']}.",
        "",
        *[f"- {reason}" for reason in report["reasons"]],
        "",
        table(_SIDE_HEADER, _side_rows(report)),
        "",
        "## Metrics",
        "",
        table(_METRIC_HEADER, _metric_rows(report)),
        "",
        "## Latency",
        "",
        "```",
        text_histogram(latency_ms, "ms"),
        "```",
    ]
    if differences:
        parts += ["", f"## {diff_title[0].upper()}{diff_title[1:]}", "", "```", text_histogram(differences, "difference"), "```"]
    return "\n".join(parts) + "\n"


def html_report(report: Mapping[str, Any]) -> str:
    """report.html: the Markdown report's content with SVG plots."""
    def table(header: list[str], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    latency_ms, differences, diff_title = _plot_series(report)
    color = {"PASS": "#2ca02c", "FAIL": "#d62728"}.get(report["verdict"], "#ff7f0e")
    plots = svg_histogram(latency_ms, "latency per request", "milliseconds")
    if differences:
        plots += svg_histogram(differences, diff_title, "candidate - baseline")
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in report["reasons"])
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>tfship canary</title><style>"
        "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}svg{margin-right:1em}</style></head><body>"
        f"<h1>Canary <span style=\"color:{color}\">{html.escape(report['verdict'])}</span>: "
        f"{html.escape(report['model'])} {html.escape(report['candidate']['ref'])} vs "
        f"{html.escape(report['baseline']['ref'])}</h1>"
        f"<p>Score {_fmt(report['score'])} (pass at {_fmt(report['judge']['pass_score'])}); "
        f"{report['requests']['pairs_answered']} of {report['requests']['asked']} paired requests answered in "
        f"{_fmt(report['requests']['seconds'], 3)} s against {html.escape(report['target'])}. "
        f"Action: {html.escape(report['action'])}.</p><ul>{reasons}</ul>"
        f"{table(_SIDE_HEADER, _side_rows(report))}<h2>Metrics</h2>{table(_METRIC_HEADER, _metric_rows(report))}"
        f"<h2>Plots</h2><div>{plots}</div></body></html>\n"
    )


def public(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report without the raw series kept for plotting."""
    return _clean({k: v for k, v in report.items() if not k.startswith("_")})


def write_reports(report: Mapping[str, Any], report_dir: str) -> dict[str, str]:
    """Write report.json, report.md and report.html under `report_dir`; returns format -> path."""
    paths = {
        "json": storage.join(report_dir, "report.json"),
        "markdown": storage.join(report_dir, "report.md"),
        "html": storage.join(report_dir, "report.html"),
    }
    storage.write_text(paths["json"], json.dumps(public(report), indent=2, sort_keys=True) + "\n")
    storage.write_text(paths["markdown"], markdown(report))
    storage.write_text(paths["html"], html_report(report))
    return paths
