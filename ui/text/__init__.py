"""The text pages' pieces: plotly figures (:mod:`ui.text.charts`) and page sections (:mod:`ui.text.views`)."""
