import sys

from benchmark.report.report import main

sys.exit(main())
