"""Editors' analytics: what customers asked, what the bot could not answer, handoff rates.

- :mod:`bot.analytics.report`: :func:`~bot.analytics.report.build_report` reads the chat
  log and the handoff queue into an :class:`~bot.analytics.report.AnalyticsReport`.
- :mod:`bot.analytics.kpis`: the standard support KPIs; :mod:`bot.analytics.resolution`: the
  resolution rate (解決率); :mod:`bot.analytics.periods`: the period filter, days and weeks.
- :mod:`bot.analytics.export`: CSV files (UTF-8 with BOM, for Excel) and a PNG/SVG chart.
- :mod:`bot.analytics.command`: :func:`~bot.analytics.command.run_report` is ``bot report``
  (the plain-text report, CSV files, chart).

The HTTP API of the console's analytics page is the server's: :mod:`bot.server.analytics_api`.
The modules import one way only: ``command`` → ``export`` → ``report`` → ``kpis`` →
``resolution`` → ``periods``.

See docs/analytics.md for what each table means and how editors act on it.
"""

from bot.analytics.command import run_report
from bot.analytics.report import JST, AnalyticsReport, build_report, last_days

__all__ = ["JST", "AnalyticsReport", "build_report", "last_days", "run_report"]
