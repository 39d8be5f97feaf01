# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Datasets: preparation of ACDC and Synapse (``sources``: readers of the source forms; ``acdc``, ``synapse``: the
forms; ``cases``: validation, writing and the datalist; ``prepare``: the command), synthetic phantoms written in the
layouts of the real releases, and the loading and checks of a prepared datalist by the bundles
(:mod:`aisam_monai.data.datalist`, imported by its path: it needs MONAI, the preparation commands do not).

Command lines: ``python -m aisam_monai.data.prepare`` and ``python -m aisam_monai.data.synthetic``.
"""

from __future__ import annotations

from aisam_monai.data.acdc import ACDC_LABELS
from aisam_monai.data.cases import CaseError
from aisam_monai.data.synapse import SYNAPSE_LABELS

__all__ = ["ACDC_LABELS", "SYNAPSE_LABELS", "CaseError"]
