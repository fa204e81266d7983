"""Page sections, one module per modality: ``text`` (how errors are shown), ``image`` (index status,
neighbour grid, image map) and ``compare`` (the before/after layout)."""
