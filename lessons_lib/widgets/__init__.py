"""Notebook widgets (ipywidgets 7.7 on Colab and 8.x elsewhere); each widget lives in its own module."""
