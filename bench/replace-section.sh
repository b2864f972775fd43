#!/usr/bin/env bash
# Puts SECTION_FILE into DOC in place of the section whose "## " heading line equals HEADING (up
# to the next "## " heading), or appends it; creates DOC with a "# Benchmarks" title if missing.
# The benchmark scripts share it so every run replaces its own table and leaves the rest alone.
# Usage: replace-section.sh DOC HEADING SECTION_FILE
set -euo pipefail
doc=$1 heading=$2 section=$3
mkdir -p "$(dirname "$doc")"
if [ ! -f "$doc" ]; then
  { echo "# Benchmarks"; echo; cat "$section"; } >"$doc"
  exit 0
fi
updated=$(mktemp)
trap 'rm -f "$updated"' EXIT
awk -v sectionfile="$section" -v heading="$heading" '
  /^## / { if (skip) skip = 0 }
  $0 == heading {
    while ((getline line < sectionfile) > 0) print line
    print ""
    skip = 1; done = 1; next
  }
  !skip { print; last = $0 }
  END {
    if (!done) {
      if (last != "") print ""
      while ((getline line < sectionfile) > 0) print line
    }
  }' "$doc" >"$updated"
cat "$updated" >"$doc"
