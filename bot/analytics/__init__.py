"""Editors' analytics: what customers asked, what the bot could not answer, handoff rates.

- :mod:`bot.analytics.report`: :func:`~bot.analytics.report.build_report` reads the chat
  log and the handoff queue into an :class:`~bot.analytics.report.AnalyticsReport`;
  :func:`~bot.analytics.report.run_report` is ``bot report``.
- :mod:`bot.analytics.export`: CSV files (UTF-8 with BOM, for Excel) and a PNG/SVG chart.
- :mod:`bot.analytics.page`: ``GET /api/analytics`` for the console's analytics page.

See docs/analytics.md for what each table means and how editors act on it.
"""

from bot.analytics.report import JST, AnalyticsReport, build_report, last_days, run_report

__all__ = ["JST", "AnalyticsReport", "build_report", "last_days", "run_report"]
