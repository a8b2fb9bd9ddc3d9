#!/bin/sh
# The valkey image's docker-entrypoint.sh, reduced to what the local cluster needs: arguments that start
# with '-' (or a .conf file) are arguments of valkey-server. The upstream script also drops root to the
# image's user; pods here say whom they run as through their securityContext instead.
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- valkey-server "$@"
fi
exec "$@"
