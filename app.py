"""Hugging Face Space entry point: the same app as the ``motionpatch-app`` console script (README, "Browse and
search a motion library").

A Space runs ``python app.py``; Space variables choose what it serves (defaults: the demo model, trained on the
first start when ``runs/demo/best`` is absent, over the embedded synthetic test split):

    MOTIONPATCH_MODEL      a model folder in the Space or a Hub id (--model)
    MOTIONPATCH_LIBRARY    a folder in the Space (prepared dataset, .bvh or .npy files) or a Hub dataset id (--library)
    MOTIONPATCH_APP_ARGS   any other flags, e.g. "--bvh-scale 0.01 --top-k 8"

Spaces set GRADIO_SERVER_NAME=0.0.0.0 and GRADIO_SERVER_PORT=7860, which the app reads.
"""

import os
import shlex
import sys

from motionpatch_training.app import main

if __name__ == "__main__":
    argv = shlex.split(os.environ.get("MOTIONPATCH_APP_ARGS", ""))
    if os.environ.get("MOTIONPATCH_MODEL"):
        argv += ["--model", os.environ["MOTIONPATCH_MODEL"]]
    if os.environ.get("MOTIONPATCH_LIBRARY"):
        argv += ["--library", os.environ["MOTIONPATCH_LIBRARY"]]
    sys.exit(main(argv))
