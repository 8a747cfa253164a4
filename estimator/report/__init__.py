"""What a person reads: one document model rendered as HTML and Markdown (``document``), the
charts (``figures``), the run report, the plan summary and the console tables.

Rendering only: takes records, manifests and paths, computes no estimate. Imports the
foundation, ``regions`` and ``stages``.
"""

from __future__ import annotations

from estimator.lazy import exports

__all__ = [
    "CSP",
    "VERDICT_COLOURS",
    "Banner",
    "Block",
    "Bullets",
    "Details",
    "Figure",
    "Heading",
    "Link",
    "Paragraph",
    "Table",
    "claims_chart",
    "draw_outlines",
    "format_summary",
    "print_estimates",
    "print_summary",
    "probability_map",
    "pyplot",
    "read_decimated",
    "read_items",
    "render_html",
    "render_md",
    "render_report_md",
    "save_items",
    "stamp_synthetic",
    "summarize",
    "timeseries_chart",
    "to_png",
]

_WHERE = {
    "Banner": "document",
    "Block": "document",
    "Bullets": "document",
    "CSP": "document",
    "Details": "document",
    "Figure": "document",
    "Heading": "document",
    "Link": "document",
    "Paragraph": "document",
    "Table": "document",
    "VERDICT_COLOURS": "figures",
    "claims_chart": "figures",
    "draw_outlines": "figures",
    "format_summary": "plan_summary",
    "print_estimates": "text",
    "print_summary": "text",
    "probability_map": "figures",
    "pyplot": "figures",
    "read_decimated": "figures",
    "read_items": "plan_summary",
    "render_html": "document",
    "render_md": "document",
    "render_report_md": "run_report",
    "save_items": "plan_summary",
    "stamp_synthetic": "figures",
    "summarize": "plan_summary",
    "timeseries_chart": "figures",
    "to_png": "figures",
}

__getattr__, __dir__ = exports(__name__, _WHERE)
