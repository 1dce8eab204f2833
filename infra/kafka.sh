#!/usr/bin/env bash
# Start, stop or query the project's single-node KRaft Kafka broker on 127.0.0.1.
#   infra/kafka.sh up|down|status [--env ENV]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
make -s kafka-jars >/dev/null
exec "$ROOT/.venv/bin/lakeloop" kafka "$@"
