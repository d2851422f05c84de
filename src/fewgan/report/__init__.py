"""fewgan.report: the benchmark report (reports/benchmark/) built from every stage's outputs."""

from fewgan.report.collect import ReportInputError
from fewgan.report.stage import run

__all__ = ["ReportInputError", "run"]
