"""spark-submit jobs/build_features.py --pipeline houses --date 2026-01-01
spark-submit jobs/build_features.py --pipeline houses --start 2026-01-01 --end 2026-03-31"""

import sys

from lakeloop.jobs.build_features import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
