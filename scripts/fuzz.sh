#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a bounded time each
# (go test -fuzz takes one target per run). Usage: scripts/fuzz.sh [fuzztime]
set -euo pipefail
fuzztime="${1:-10s}"
found=0
while IFS=: read -r file name; do
	pkg="./$(dirname "$file")"
	found=$((found + 1))
	echo "fuzz ${name} in ${pkg} for ${fuzztime}"
	go test -run='^$' -fuzz="^${name}\$" -fuzztime="${fuzztime}" "${pkg}"
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' pkg internal functions 2>/dev/null | sed 's/:func /:/' | sort -u)
echo "fuzz: ${found} targets run"
