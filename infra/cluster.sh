#!/usr/bin/env bash
# Start, stop or query the project's local cluster on 127.0.0.1: HDFS NameNode + DataNode,
# a Spark standalone master + workers and an MLflow tracking server (cluster.* in conf/).
#   infra/cluster.sh up|down|status [--env ENV] [--set KEY=VALUE]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
make -s setup >/dev/null
exec "$ROOT/.venv/bin/lakeloop" cluster "$@"
