"""spark-submit jobs/report.py --pipeline houses --date 2026-01-01"""

import sys

from lakeloop.jobs.report import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
