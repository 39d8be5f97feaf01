# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Files in and out, with no training logic:

* :mod:`~aisam_monai.io.atomic`: atomic file writing (a whole file or none);
* :mod:`~aisam_monai.io.checks`: the input checks of every entry point (files, labels, model settings);
* :mod:`~aisam_monai.io.nifti`: NIfTI writing, opening of 3D input volumes, case names of files;
* :mod:`~aisam_monai.io.nifti_slabs`: NIfTI reading (the one file reader of the bundles' inference and the
  predictor) and writing, one slab of slices at a time;
* :mod:`~aisam_monai.io.points_record`: the ``{case}_points.json`` record of the generated points;
* :mod:`~aisam_monai.io.checkpoint`: checkpoint checks and the epoch checkpoints of a resumable training;
* :mod:`~aisam_monai.io.errors`: input errors reported as one logged line, without a traceback.

The modules are imported by their own path (nothing is re-exported here), so that a light one (``atomic``,
``nifti``) does not pull torch or MONAI into the dataset preparation commands.
"""
