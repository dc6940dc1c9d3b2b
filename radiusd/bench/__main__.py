"""``python -m radiusd.bench``: see ``radiusd.bench.run``."""

import sys

from radiusd.bench.run import main

sys.exit(main())
