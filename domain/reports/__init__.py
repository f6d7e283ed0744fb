"""Learning reports: MTTD, MTTA, MTTM, MTTR, MTBF, alert quality and follow-through from archive rows (pure),
their charts (SVG, server-side) and the HTML page."""
