"""``python -m d4rl_lite.cli ARGS``: the same as ``d4rl-lite ARGS``."""

import sys

from d4rl_lite.cli import main

sys.exit(main())
