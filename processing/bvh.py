"""The BVH reader: this module IS :mod:`modeling_motionpatch.bvh` (one parser for the package and the Hub pipeline).

The reader moved into the library so that ``pipeline("zero-shot-motion-classification")`` can read ``.bvh`` files
without this package; ``motionpatch_processing.bvh`` stays importable under its old name, private names included.
"""

import sys

from modeling_motionpatch import bvh as _bvh

sys.modules[__name__] = _bvh
