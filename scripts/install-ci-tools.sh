#!/usr/bin/env bash
# Tools the GitLab template tests (tests/e2e) run: gitlab-ci-local (npm) runs a .gitlab-ci.yml on
# this machine, rsync is what it copies the project with, git makes the throwaway repository.
# gitlab-ci-local goes into .ci-tools/ (git-ignored), pinned to 4.73.0, which needs Node 20 (4.74+
# needs 22). Debian 12's own nodejs is 18: when the machine's node is older than 20, the npm
# registry's node@20 is installed into .ci-tools/node/. Either way the tests run
# .ci-tools/bin/gitlab-ci-local, a launcher that puts the chosen node first on PATH.
# Installs only what is missing, so a second run costs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

GCL_VERSION=4.73.0
NODE_MAJOR=20
PREFIX=.ci-tools
GCL="$PREFIX/node_modules/.bin/gitlab-ci-local"
NPM_NODE="$PREFIX/node/node_modules/.bin/node"
LAUNCHER="$PREFIX/bin/gitlab-ci-local"

fail() {
  echo "install-ci-tools: $*" >&2
  exit 1
}

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
fi

declare -A package_of=([rsync]=rsync [git]=git [npm]=npm)
missing=()
for tool in "${!package_of[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package_of[$tool]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ -n "$sudo" ] && ! command -v sudo >/dev/null 2>&1; then
    fail "install as root: apt-get install ${missing[*]}"
  fi
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The major version of the node at $1, or nothing when it does not run.
major_of() {
  "$1" --version 2>/dev/null | sed -n 's/^v\([0-9][0-9]*\)\..*/\1/p'
}

node=""
system_node=$(command -v node || true)
if [ -n "$system_node" ] && [ "$(major_of "$system_node")" -ge "$NODE_MAJOR" ] 2>/dev/null; then
  node=$system_node
  source="the machine's, $node"
else
  if ! [ "$(major_of "$NPM_NODE")" -ge "$NODE_MAJOR" ] 2>/dev/null; then
    have=$([ -n "$system_node" ] && "$system_node" --version 2>/dev/null || echo "no node")
    echo "gitlab-ci-local $GCL_VERSION needs Node $NODE_MAJOR+, the machine has $have:" \
      "installing npm's node@$NODE_MAJOR into $PREFIX/node/"
    mkdir -p "$PREFIX/node"
    npm install --silent --no-audit --no-fund --prefix "$PREFIX/node" "node@$NODE_MAJOR" \
      >"$PREFIX/node/install.log" 2>&1 ||
      fail "gitlab-ci-local $GCL_VERSION needs Node $NODE_MAJOR or newer; the machine has $have" \
        "and 'npm install node@$NODE_MAJOR' failed (see $PREFIX/node/install.log)"
  fi
  [ "$(major_of "$NPM_NODE")" -ge "$NODE_MAJOR" ] 2>/dev/null ||
    fail "gitlab-ci-local $GCL_VERSION needs Node $NODE_MAJOR or newer; $NPM_NODE does not run" \
      "(remove $PREFIX/node and run again)"
  node=$(cd "$(dirname "$NPM_NODE")" && pwd)/node
  source="npm's node@$NODE_MAJOR in $PREFIX/node/"
fi

if ! [ -x "$GCL" ] || [ "$("$node" "$(readlink -f "$GCL")" --version 2>/dev/null)" != "$GCL_VERSION" ]; then
  echo "installing gitlab-ci-local@$GCL_VERSION into $PREFIX/"
  mkdir -p "$PREFIX"
  npm install --silent --no-audit --no-fund --prefix "$PREFIX" "gitlab-ci-local@$GCL_VERSION" >/dev/null
fi

# gitlab-ci-local's script starts with "#!/usr/bin/env node": the launcher runs it with the chosen
# node instead, and leaves PATH alone, which the jobs it runs in the shell inherit.
mkdir -p "$PREFIX/bin"
cat >"$LAUNCHER.tmp" <<EOF
#!/bin/sh
# Written by scripts/install-ci-tools.sh: gitlab-ci-local $GCL_VERSION on Node ($source).
exec "$node" "$(readlink -f "$GCL")" "\$@"
EOF
chmod +x "$LAUNCHER.tmp"
mv "$LAUNCHER.tmp" "$LAUNCHER"
version=$("$LAUNCHER" --version 2>/dev/null | head -n 1) || true
[ "$version" = "$GCL_VERSION" ] ||
  fail "gitlab-ci-local answered '${version:0:80}' to --version, not $GCL_VERSION, on Node" \
    "$("$node" --version) ($node)"
echo "gitlab-ci-local $GCL_VERSION on Node $("$node" --version) ($source)"
