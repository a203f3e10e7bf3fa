"""``python -m bsk_cupy`` runs the ``bsk-cupy`` command."""

import sys

from .cli import main

sys.exit(main())
