"""Renderers from the simulator's event state to real export formats, one module per format."""
