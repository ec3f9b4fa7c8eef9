# Shared by the shell test suites (tests/install, tests/integration):
# PASS/FAIL/SKIP lines and their counts, and a scratch directory.
#
#   . "$(dirname "$0")/../harness.sh"; scratch NAME
#   ...; finish
#
# A check whose tool is missing is skipped on a laptop and fails when CI is
# set (`missing`). KEEP=1 keeps the scratch directory.
# shellcheck shell=bash

passed=0
failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() {
	echo "FAIL $1"
	if [ $# -gt 1 ] && [ -s "$2" ]; then tail -n 20 "$2" | sed 's/^/    /'; fi
	failed=$((failed + 1))
}
missing() {
	if [ -n "${CI:-}" ]; then
		fail "$1: needs $2 (CI is set)"
	else
		echo "SKIP $1: needs $2"
	fi
}
have() { command -v "$1" > /dev/null 2>&1; }

# scratch NAME: SCRATCH (removed on exit unless KEEP is set) and LOG in it.
scratch() {
	SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")"
	if [ -z "${KEEP:-}" ]; then
		# shellcheck disable=SC2064 # expand now: SCRATCH is this call's
		trap "rm -rf '${SCRATCH}'" EXIT
	else
		echo "# scratch directory: ${SCRATCH}"
	fi
	# shellcheck disable=SC2034 # used by the suites
	LOG="${SCRATCH}/log"
}

# The summary line; the suite's exit status.
finish() {
	echo "${passed} passed, ${failed} failed"
	[ "${failed}" -eq 0 ]
}
