"""``python -m simcomm``: the ``simcomm`` command, where no script is installed."""

import sys

from simcomm.cli import _entry

if __name__ == "__main__":
    sys.exit(_entry())
