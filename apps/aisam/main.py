# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""MONAI Label app serving the AI-SAM bundles exported into ``model/`` (docs/monailabel.md):

    python -m aisam_monai.serving.export bundles/acdc --checkpoint <model.pt> --out apps/aisam/model/acdc ...
    monailabel start_server --app apps/aisam --studies <folder of NIfTI volumes>

No ``--conf`` is needed: every ``model/<name>/`` with ``models/model.pt`` is served as ``<name>`` (clicks) and
``<name>_seg`` (automatic).
"""

from __future__ import annotations

import os

from monailabel.interfaces.app import MONAILabelApp

import aisam_monai
from aisam_monai.serving.monailabel import infer_tasks


class AISAMApp(MONAILabelApp):
    def __init__(self, app_dir, studies, conf):
        self.model_dir = os.path.join(app_dir, "model")
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="AI-SAM (aisam-monai)",
            description="AI-SAM bundles: automatic segmentation and click refinement (arXiv 2312.03119)",
            version=aisam_monai.__version__,
        )

    def init_infers(self):
        return infer_tasks(self.model_dir, self.conf)
