"""The report a run ends with: test-scene scores, figures, predicted masks, training curves
and provenance in one folder (report.md, report.html), written by `write_report`.
`earthseg.report.scores` scores predicted masks alone."""

from earthseg.report.build import ReportSummary, write_report

__all__ = ["ReportSummary", "write_report"]
