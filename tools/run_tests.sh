#!/usr/bin/env bash
# README's test command: set up the environment if needed, then run the tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/tools/setup_env.sh"
cd "$root"
exec "${MMSEG_DNC_VENV:-$root/.venv}/bin/python" -m pytest tests --durations=15 "$@"
