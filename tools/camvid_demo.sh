#!/usr/bin/env bash
# README's main command: set up the environment if needed, then train and
# evaluate DNC on CamVid with pictures (tools/camvid_demo.py; flags pass through).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/tools/setup_env.sh"
exec "${MMSEG_DNC_VENV:-$root/.venv}/bin/python" "$root/tools/camvid_demo.py" "$@"
