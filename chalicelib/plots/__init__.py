"""The six diagnostic plots of a calibration fit, one module each, and what they share.

Shared: ``layout`` (tile cells by receiver and slot, colours, fading, y range, data helpers),
``figure`` (the matplotlib figure and its PNG), ``legend`` (legend entries), ``marks`` (the marks
drawn in a tile's cell) and ``channels`` (gains per coarse channel).

Each plot module has ``compute(...)``: a pure function from database rows to the plot's data
(plain dicts and numpy arrays per tile: exactly the points drawn) and ``render(data) -> bytes``
(a PNG). ``service`` fetches the rows, keeps rendered plots in the products bucket and answers
with a redirect. matplotlib is imported only when a plot is rendered.
"""

KINDS: tuple[str, ...] = ("tilediff", "timediff", "xydiff", "gains", "gaintimes", "phasefit")
