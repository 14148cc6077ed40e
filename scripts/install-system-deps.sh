#!/usr/bin/env bash
# Debian packages the tests and the demo use as real peers: a registry (docker-registry, with
# htpasswd from apache2-utils), a forward proxy (tinyproxy, run by the tests on loopback only),
# and independent image tools (skopeo, umoci).
# Installs only what is missing, so a second run costs nothing.
set -euo pipefail

declare -A package_of=(
  [docker-registry]=docker-registry
  [htpasswd]=apache2-utils
  [skopeo]=skopeo
  [umoci]=umoci
  [tinyproxy]=tinyproxy
)
missing=()
for tool in "${!package_of[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package_of[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install as root: apt-get install ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
