#!/usr/bin/env bash
# README's test command: set up the environment if needed, then run the tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/tools/setup_env.sh"
cd "$root"
# one test process per core, each torch on one thread (two 2-thread processes on
# 2 cores would oversubscribe them); pass -n 0 to run in one process
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec "${MMSEG_DNC_VENV:-$root/.venv}/bin/python" -m pytest tests -n 2 --dist worksteal \
    --durations=15 "$@"
