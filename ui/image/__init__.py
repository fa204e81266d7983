"""The image pages' pieces: figures (:mod:`ui.image.charts`), sections (:mod:`ui.image.views`) and the before/after layout (:mod:`ui.image.compare`)."""
