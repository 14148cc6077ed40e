#!/usr/bin/env bash
# Tools the GitLab template tests (tests/e2e) run: gitlab-ci-local (npm) runs a .gitlab-ci.yml on
# this machine, rsync is what it copies the project with, git makes the throwaway repository.
# gitlab-ci-local goes into .ci-tools/ (git-ignored), pinned: 4.74+ needs Node 22, Debian 12 has 20.
# Installs only what is missing, so a second run costs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

GCL_VERSION=4.73.0
PREFIX=.ci-tools
GCL="$PREFIX/node_modules/.bin/gitlab-ci-local"

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
fi

declare -A package_of=([rsync]=rsync [git]=git [node]=nodejs [npm]=npm)
missing=()
for tool in "${!package_of[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package_of[$tool]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ -n "$sudo" ] && ! command -v sudo >/dev/null 2>&1; then
    echo "install as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -x "$GCL" ] && [ "$("$GCL" --version 2>/dev/null)" = "$GCL_VERSION" ]; then
  exit 0
fi
echo "installing gitlab-ci-local@$GCL_VERSION into $PREFIX/"
mkdir -p "$PREFIX"
npm install --silent --no-audit --no-fund --prefix "$PREFIX" "gitlab-ci-local@$GCL_VERSION" >/dev/null
"$GCL" --version
