# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Dataset preparation (ACDC, Synapse) into NIfTI + decathlon-style datalists, and synthetic phantoms
written in the layouts of the real releases.

Command lines: ``python -m aisam_monai.data.prepare`` and ``python -m aisam_monai.data.synthetic``.
"""

from __future__ import annotations

from aisam_monai.data.acdc import ACDC_LABELS
from aisam_monai.data.common import CaseError
from aisam_monai.data.synapse import SYNAPSE_LABELS

__all__ = ["ACDC_LABELS", "SYNAPSE_LABELS", "CaseError"]
