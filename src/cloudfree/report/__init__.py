"""Reports of evaluated runs: a self-contained HTML page with the metrics table, the PSNR per
cloud-cover bin plot, sample panels and a scene before/after (``cloudfree report RUN_DIR``).

* :mod:`cloudfree.report.html` - :func:`build_report` and what ``RUN_DIR`` must contain;
* :mod:`cloudfree.report.plots` - the matplotlib plot (Agg backend);
* :mod:`cloudfree.report.panels` - RGB / SAR / mask panels of test patches and scenes.
"""

from cloudfree.report.html import (
    REPORT_HTML,
    ReportInputs,
    build_report,
    load_report_inputs,
    model_label,
    render_report_html,
)
from cloudfree.report.panels import render_sample_panels, render_scene_images, select_by_cover
from cloudfree.report.plots import cover_bin_figure

__all__ = [
    "REPORT_HTML",
    "ReportInputs",
    "build_report",
    "cover_bin_figure",
    "load_report_inputs",
    "model_label",
    "render_report_html",
    "render_sample_panels",
    "render_scene_images",
    "select_by_cover",
]
