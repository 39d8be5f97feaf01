# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""aisam-monai: AI-SAM (Automatic and Interactive Segment Anything Model) as a MONAI toolkit."""

__version__ = "0.1.0"
