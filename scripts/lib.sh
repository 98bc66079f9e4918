# Sourced by the scripts in this folder: where Berth keeps its tools, and the Node 24 that runs it.
# Nothing here installs; scripts/bootstrap does that.
BERTH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BERTH_CACHE_DIR="${BERTH_CACHE_DIR:-$BERTH_ROOT/.cache}"
BERTH_NODE_VERSION="24.21.0"
BERTH_NODE_HOME="$BERTH_CACHE_DIR/node-$BERTH_NODE_VERSION"
export BERTH_ROOT BERTH_CACHE_DIR
export PATH="$BERTH_NODE_HOME/bin:$BERTH_CACHE_DIR/bin:$BERTH_ROOT/node_modules/.bin:$PATH"
# Native addons (ssh2's crypto binding) build against the headers shipped with this Node, offline.
export npm_config_nodedir="$BERTH_NODE_HOME"

say() { printf '\033[1m[%s]\033[0m %s\n' "${BERTH_STEP:-berth}" "$*"; }
die() { printf '\033[31m[%s] %s\033[0m\n' "${BERTH_STEP:-berth}" "$*" >&2; exit 1; }
