#!/usr/bin/env bash
# setup.sh — installs what scbench needs on Debian 12 (or Ubuntu): the build dependencies from
# apt, and with --tests the Python reference libraries the tests compare against (HF tokenizers,
# transformers, rouge-score, nltk) into a virtual environment at .venv. Safe to run again:
# it installs only what is missing. The scbench program itself never needs Python.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PKGS="gcc meson ninja-build pkg-config libsqlite3-dev libcjson-dev zlib1g-dev libcmocka-dev
      libopenblas-dev libpcre2-dev libutf8proc-dev gnuplot-nox sqlite3"
if [ "${1:-}" = "--tests" ]; then PKGS="$PKGS python3 python3-venv python3-pip"; fi

missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    echo "setup: installing Debian packages:$missing"
    $SUDO apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

if [ "${1:-}" = "--tests" ]; then
    if [ ! -x .venv/bin/python3 ]; then python3 -m venv .venv; fi
    if ! .venv/bin/python3 -c 'import tokenizers, transformers, jinja2, rouge_score, nltk, numpy' 2>/dev/null; then
        echo "setup: installing Python reference libraries into .venv"
        .venv/bin/python3 -m pip install -q --disable-pip-version-check -r tools/requirements-test.txt
    fi
fi
