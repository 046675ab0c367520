# shellcheck shell=bash
# Streaming calls to a container engine's Docker API from shell tools
# (tools/stacks/build, tools/images): sourced, never run. The caller sets
# SOCK (the engine's unix socket), API (e.g. v1.41) and tmp (a scratch
# directory of its own).

# c2d::stream LABEL: prints an engine's JSON-lines stream (build or push) as
# text, each line prefixed with LABEL; errors become "ERROR: …" lines. Every
# line also goes to $tmp/stream.log, which callers then search.
#
# Engine streams report failure inside an HTTP 200: {"error": "...",
# "errorDetail": {...}}. Requests refused outright come back as a non-2xx JSON
# object {"message": "...", "cause": ..., "response": N} (Podman's form).
c2d::stream() {
  local label=$1
  jq -Rr --unbuffered '
    (try fromjson catch null) as $j
    | if $j == null then "  | " + .
      elif ($j | type) != "object" then "  | " + .
      elif $j.error then "ERROR: " + ($j.error | tostring | rtrimstr("\n"))
      elif $j.message then "ERROR: " + ($j.message | tostring)
      elif $j.stream then ($j.stream | rtrimstr("\n"))
      elif $j.status then ([$j.id, $j.status] | map(select(. != null)) | join(": "))
      elif $j.aux then "aux: " + ($j.aux | tojson)
      else tojson end' |
    tee -a "$tmp/stream.log" | sed -u "s|^|  $label: |" >&2
}

# c2d::engine_call LABEL METHOD PATH [curl args]: a streaming engine request;
# fails if curl fails, the status is not 2xx or the stream reports an error.
c2d::engine_call() {
  local label=$1 method=$2 path=$3
  shift 3
  : >"$tmp/stream.log"
  curl -sS -N --unix-socket "$SOCK" -X "$method" -D "$tmp/headers" "$@" \
    "http://d/$API$path" | c2d::stream "$label" ||
    c2d::die "$label: $method $path: request failed"
  local code
  # The last status line: curl's Expect: 100-continue adds an interim one.
  code=$(awk '/^HTTP\// { code = $2 } END { print code }' "$tmp/headers")
  [[ $code == 2* ]] || c2d::die "$label: $method $path answered HTTP $code"
  ! grep -q '^ERROR: ' "$tmp/stream.log" || c2d::die "$label: $method ${path%%\?*} failed: $(grep -m1 '^ERROR: ' "$tmp/stream.log")"
}
