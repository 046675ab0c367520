# The host Caddy that is c2d's local ingress: one plain-HTTP server on
# loopback whose routes the deployer manages through the admin API (each
# route has an @id, so changes are targeted, never a full reload). Sourced.
#
#   c2d::caddy_start DIR ADMIN_PORT HTTP_PORT   admin API and the server on 127.0.0.1
#   c2d::caddy_stop DIR
#
# Caddy keeps its state (autosaved config, certificates) in DIR, through
# XDG_DATA_HOME and XDG_CONFIG_HOME; a restart resumes the last routes.

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/registry.sh"  # pid file helpers

c2d::caddy_start() {
  local dir=$1 admin_port=$2 http_port=$3
  mkdir -p "$dir/data" "$dir/config"
  if c2d::pidfile_alive "$dir/caddy.pid"; then return 0; fi
  # Unknown hosts get a clear 404 from the last route; service routes are
  # inserted before it.
  cat >"$dir/caddy.json" <<JSON
{
  "admin": {"listen": "127.0.0.1:$admin_port"},
  "logging": {"logs": {"default": {"level": "WARN"}}},
  "apps": {"http": {"servers": {"c2d": {
    "listen": ["127.0.0.1:$http_port"],
    "automatic_https": {"disable": true},
    "routes": [{"@id": "c2d-fallback",
                "handle": [{"handler": "static_response", "status_code": 404,
                            "body": "no c2d service answers to this host\n"}]}]
  }}}}
}
JSON
  XDG_DATA_HOME=$dir/data XDG_CONFIG_HOME=$dir/config \
    setsid caddy run --resume --config "$dir/caddy.json" >>"$dir/caddy.log" 2>&1 </dev/null &
  echo $! >"$dir/caddy.pid"
  local deadline=$((SECONDS + 30))
  until curl -fsS "http://127.0.0.1:$admin_port/config/" >/dev/null 2>&1; do
    if ! c2d::pidfile_alive "$dir/caddy.pid" || ((SECONDS > deadline)); then
      tail -n 20 "$dir/caddy.log" >&2
      c2d::die "caddy did not start (log: $dir/caddy.log)"
    fi
    sleep 0.1
  done
}

c2d::caddy_stop() {
  c2d::stop_pidfile "$1/caddy.pid" 10
}
