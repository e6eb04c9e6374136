"""``python -m eirnn_fast.cli ...``: the ``eirnn-fast`` command."""

import sys

from eirnn_fast.cli import main

sys.exit(main())
