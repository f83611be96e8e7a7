"""Serving layer: the Streamlit dashboard (``ltae dashboard``)."""
