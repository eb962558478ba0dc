#!/bin/sh
# The container's entrypoint (deploy/Dockerfile): register the mounted stack file as the
# active stack, then serve on all interfaces with the arguments given (`--port`, ...).
set -eu
if [ -f "${KITARU_STACK_FILE:-}" ]; then
  kitaru stack register "$KITARU_STACK_FILE" --activate --force >&2
fi
exec kitaru server start --host 0.0.0.0 "$@"
