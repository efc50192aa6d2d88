#!/bin/sh
# Runs every Go fuzz target of the module for a bounded time each
# (FUZZTIME, default 10s), one after the other: `make test` calls it so
# the fuzzers look past their committed corpora (testdata/fuzz/<target>,
# which the ordinary test run replays) on every run. A failure leaves the
# failing input in testdata/fuzz/<target>/ to commit with the fix.
set -eu
FUZZTIME=${FUZZTIME:-10s}
GO=${GO:-go}
cd "$(dirname "$0")/.."

targets=$(grep -rl --include='*_test.go' '^func Fuzz' cmd internal | sort)
[ -n "$targets" ] || { echo "fuzz: no fuzz targets found" >&2; exit 1; }
n=0
for file in $targets; do
	pkg=./$(dirname "$file")
	for fn in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
		echo "fuzz: $pkg $fn ($FUZZTIME)"
		$GO test -run '^$' -fuzz "^$fn\$" -fuzztime "$FUZZTIME" "$pkg"
		n=$((n + 1))
	done
done
echo "fuzz: $n targets, $FUZZTIME each, no failures"
