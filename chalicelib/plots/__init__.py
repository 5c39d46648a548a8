"""The five diagnostic plots of a calibration fit, one module each, and their shared layout.

Each plot module has ``compute(...)``: a pure function from database rows to the plot's data
(plain dicts and numpy arrays per tile: exactly the points drawn) and ``render(data) -> bytes``
(a PNG). ``service`` fetches the rows, keeps rendered plots in the products bucket and answers
with a redirect. matplotlib is imported only when a plot is rendered.
"""

KINDS: tuple[str, ...] = ("tilediff", "timediff", "xydiff", "gains", "gaintimes")
