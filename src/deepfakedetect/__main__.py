"""``python -m deepfakedetect``: the command line."""

import sys

from deepfakedetect.cli import main

sys.exit(main())
