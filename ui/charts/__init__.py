"""Plotly figure builders, one module per modality: ``text`` (heatmaps, rankings, word maps) and
``image`` (the gallery, precision bars, confusion matrix, image map). No streamlit calls."""
