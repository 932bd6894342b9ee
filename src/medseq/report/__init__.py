"""The model report: metrics with CIs, calibration, decisions, subgroups, external
validation, data quality, explanations and the model card, in one self-contained HTML file.

``build_report(bundle_dir, data, external=..., validation=..., output=...)`` is the entry
point (``medseq report``). matplotlib, jinja2 and Captum come with the ``report`` extra
and are imported when a report is built, not by ``import medseq``.
"""

from __future__ import annotations

from medseq.report.build import Report, ReportConfig, build_report

__all__ = ["Report", "ReportConfig", "build_report"]
