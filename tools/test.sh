#!/usr/bin/env bash
# test.sh — sets up (apt packages, .venv with the reference libraries), builds scbench in
# build/ and runs the whole test suite. Prints "N passed, N failed" at the end and exits
# non-zero if any test failed. Extra arguments go to `meson test` (e.g. a test name).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh --tests
PY="$PWD/.venv/bin/python3"
if [ ! -f build/build.ninja ]; then
    meson setup build -Dbuildtype=debugoptimized -Dpython="$PY"
else
    meson configure build -Dpython="$PY" >/dev/null
fi
ninja -C build
set +e
meson test -C build --print-errorlogs --num-processes "$(nproc)" "$@"
status=$?
set -e
python3 - build/meson-logs/testlog.json <<'PYEOF'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result")
    if r in ("OK", "EXPECTEDFAIL"): p += 1
    elif r == "SKIP": s += 1
    else: f += 1
print(f"{p} passed, {f} failed, {s} skipped")
PYEOF
exit $status
