#!/usr/bin/env bash
# Set up (or reuse) the project's virtual environment for CPU machines:
# the exact lock in requirements/cpu-lock.txt, then this package, editable.
# Usage: source tools/setup_env.sh   (or bash tools/setup_env.sh)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MMSEG_DNC_VENV:-$root/.venv}"
lock="$root/requirements/cpu-lock.txt"
stamp="$venv/.lock-$(sha1sum "$lock" | cut -c1-12)"
# what installing this package writes besides the path hook (the start-up .pth)
package_stamp="$venv/.package-$(cat "$root/setup.py" "$root/mmseg_dnc_mmcv_lite.pth" | sha1sum | cut -c1-12)"
install_package() {
    "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$root"
    rm -f "$venv"/.package-*
    touch "$package_stamp"
}
if [ ! -f "$stamp" ]; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade "pip<25"
    # torch first and alone, pinned: the CPU wheel. Nothing after it may pull
    # another torch.
    "$venv/bin/python" -m pip install -q "torch==2.13.0"
    "$venv/bin/python" -m pip install -q -r "$lock"
    install_package
    touch "$stamp"
elif [ ! -f "$package_stamp" ]; then  # setup.py changed since: this package again
    install_package
fi
"$venv/bin/python" -c "import mmseg_dnc, mmseg, torch; print('mmseg_dnc', mmseg_dnc.__version__, '| mmseg', mmseg.__version__, '| torch', torch.__version__)"
