import sys

from bench.conformance.cli import main

sys.exit(main())
