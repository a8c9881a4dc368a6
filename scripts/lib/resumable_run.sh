# Sourced by the reproduction scripts (they set `bin`, the folder of the release binaries).
# `run DIR TOOL SUBCOMMAND FLAGS...`: runs TOOL SUBCOMMAND FLAGS --out DIR (its stdout JSON
# into DIR.json) unless DIR finished (summary.json); resumes DIR if it started (config.json).
run() {
  local dir="$1" tool=("$bin/$2" "$3"); shift 3
  [ -f "$dir/summary.json" ] && return
  if [ -f "$dir/config.json" ]; then
    "${tool[@]}" --resume "$dir" --quiet > "$dir.json"
  else
    "${tool[@]}" "$@" --out "$dir" > "$dir.json"
  fi
  echo "done: $dir" >&2
}
