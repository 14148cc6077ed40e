#!/usr/bin/env bash
# The project's virtualenv for `make demo`/`make test`: made when missing, and made again when a
# earlier run left it half-made (a first run without python3-venv leaves .venv/bin/python but no
# pip, and every later pip call would fail with "No module named pip").
set -euo pipefail
VENV=${1:-.venv}

fail() {
  echo "make-venv: $*" >&2
  exit 1
}

command -v python3 >/dev/null 2>&1 ||
  fail "python3 is missing; install the prerequisites first (README): apt-get install make git python3 python3-venv"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
  exit 0
fi
if [ -e "$VENV" ]; then
  echo "rebuilding $VENV: it has no working python and pip (left half-made by an earlier run)"
  rm -rf "$VENV"
fi
# venv's own message on failure is a screen of ensurepip advice; ours is one line, with its
# last line kept for a cause other than the missing python3-venv.
if ! output=$(python3 -m venv "$VENV" 2>&1); then
  rm -rf "$VENV"
  fail "python3 -m venv failed (${output##*$'\n'}); Debian keeps venv apart: apt-get install python3-venv"
fi
