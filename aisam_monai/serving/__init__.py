# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Serving trained bundles (docs/monailabel.md):

* :mod:`~aisam_monai.serving.export`: a trained checkpoint to a self-contained bundle folder with ``models/model.pt``;
* :mod:`~aisam_monai.serving.monailabel`: the MONAI Label task of the ``apps/aisam`` app (needs ``monailabel``).

The modules are imported by their own path, so that the export does not need MONAI Label.
"""
