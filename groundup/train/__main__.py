"""`python -m groundup.train VERB ...` -- the module torchrun runs (`torchrun -m groundup.train`)."""

import sys

from groundup.train.cli import main

sys.exit(main())
