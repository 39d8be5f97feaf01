# Copyright (c) aisam-monai contributors. Licensed under the Apache License, Version 2.0.
"""Speed and memory benchmarks of aisam-monai, one script per question (see docs/benchmarks.md)."""
