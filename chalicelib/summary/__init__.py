"""The human-readable calibration pages: the summary of fits, the fit page and its tables.

- ``page``: the summary page's data (fits of observations in a time range, paged).
- ``fitstats``: per-receiver and per-tile median residual delays of one fit (pure).
- ``fitpage``: the fit page's data (the fit, its observations and plots, the sorted tables).
- ``views``: the HTTP answers (HTML from ``chalicelib/templates``, CSV, JSON).

The plots these pages link to live in ``chalicelib.plots``; all SQL in ``chalicelib.db.summary``; the
time conversions (GPS, fit ids, AWST, the form's times) in ``chalicelib.gpstime``.
Nothing here imports matplotlib.
"""
