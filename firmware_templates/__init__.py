"""Jinja2 C templates, generic C kernels and board descriptions (package data).

Use :func:`template_root` to find them from a source checkout or a normal install.
"""

from pathlib import Path


def template_root() -> Path:
    """Folder holding the templates, kernels and boards of this installed package."""
    return Path(__file__).resolve().parent
