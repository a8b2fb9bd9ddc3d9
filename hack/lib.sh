# Shared by the hack/bench-*.sh scripts (sourced).

# distribution NAME VALUES...: sorted values, p50, the maximum (with 20 samples "p99" is the maximum).
distribution() {
  local name=$1; shift
  (($# > 0)) || { echo "$name: no samples"; return; }
  local sorted; sorted=$(printf '%s\n' "$@" | sort -n | tr '\n' ' ')
  read -ra v <<<"$sorted"
  echo "$name (ms, $# runs): p50 ${v[$(( ($# - 1) / 2 ))]}  max ${v[$(($# - 1))]}"
  echo "  all: $sorted"
}
