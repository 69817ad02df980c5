#!/usr/bin/env bash
# Runs the whole suite (unit + end-to-end). "No tests collected" is a failure, not a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
export WANDB_MODE=${WANDB_MODE:-offline}
export RAY_DEDUP_LOGS=0
.venv/bin/python -m pytest -q --timeout=900 --durations=15 "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "run_tests: no tests were collected; treating as failure" >&2
  exit 1
fi
exit $rc
