"""`python -m agent solve|improve --problem FILE --repo DIR --out DIR`."""

import sys

from .cli import main

sys.exit(main())
