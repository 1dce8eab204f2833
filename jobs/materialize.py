"""spark-submit jobs/materialize.py --pipeline houses --date 2026-01-01"""

import sys

from lakeloop.jobs.materialize import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
