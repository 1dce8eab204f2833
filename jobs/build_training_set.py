"""spark-submit jobs/build_training_set.py --pipeline houses --date 2026-03-31"""

import sys

from lakeloop.jobs.build_training_set import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
