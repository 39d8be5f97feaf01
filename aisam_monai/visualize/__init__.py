# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.

"""Figures for AI-SAM: images with class-coloured masks and prompt points (matplotlib, Agg backend).

``plot_slices`` is the entry point used by the bundles' quickstart and the ``aisam show`` command;
``draw_overlay`` draws one slice on an existing axes.
"""

from __future__ import annotations

from .figures import plot_slices, save_figure
from .overlay import class_colors, draw_overlay, legend_handles, to_display_image

__all__ = ["class_colors", "draw_overlay", "legend_handles", "plot_slices", "save_figure", "to_display_image"]
