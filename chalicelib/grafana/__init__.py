"""The Grafana JSON datasource (simpod-json-datasource 0.6.x) under /calib/grafana.

``request`` reads what Grafana sends, ``options`` answers the query builder, variables and ad hoc
filters, ``query`` builds the data frames, ``api`` maps the routes to them; SQL is in
``chalicelib.db.grafana``.
"""
