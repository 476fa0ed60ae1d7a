#!/usr/bin/env bash
# The real backends of the live suites, without Docker: PostgreSQL, Redis, Neo4j, MindsDB
# and Trino on loopback. The work is done by the weaver_services package (scripts/), run
# with the project's virtualenv (`make install` creates it):
#
#   scripts/services.sh up|down|status|env [service...]     (--help for the settings)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=$root/.venv/bin/python
[[ -x $python ]] || { echo "[services] ERROR: no $python: run \`make install\` first" >&2; exit 1; }
PYTHONPATH=$root/scripts${PYTHONPATH:+:$PYTHONPATH} exec "$python" -m weaver_services "$@"
