"""``python -m avlab …`` (and ``torchrun … -m avlab train …``) is the ``avlab`` command."""
import sys

from avlab.cli import main

sys.exit(main())
