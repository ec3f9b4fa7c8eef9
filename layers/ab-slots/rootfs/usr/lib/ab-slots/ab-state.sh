# A/B slot state: read and write the state file on the config partition.
# Sourced by the initramfs hook (/lib/rorootfs/hooks/50-ab-slots.sh) and by
# ab-mark-good / ab-switch in the root filesystem; busybox sh compatible.
#
# The file is a few key=value lines:
#   active=A     the confirmed slot (A or B); missing file = A
#   trial=B      a slot installed but not yet confirmed; empty = none
#   tries=1      trial boots started so far
#   failed=B     the last slot whose trial was not confirmed (information)
# Unknown keys and malformed values are ignored (defaults apply).

# ab_state_read FILE: sets ab_active, ab_trial, ab_tries, ab_failed.
ab_state_read() {
	ab_active=A ab_trial= ab_tries=0 ab_failed=
	[ -f "$1" ] || return 0
	while IFS='=' read -r ab_k ab_v; do
		case "$ab_k=$ab_v" in
		active=A|active=B) ab_active=$ab_v ;;
		trial=A|trial=B) ab_trial=$ab_v ;;
		failed=A|failed=B) ab_failed=$ab_v ;;
		tries=*) case "$ab_v" in ''|*[!0-9]*) ;; *) ab_tries=$ab_v ;; esac ;;
		esac
	done <"$1"
	return 0
}

# ab_state_write FILE: writes the ab_* variables so that a power cut at any
# moment leaves either the old or the new state, never a mix: new file,
# fsync it, rename it over the old one, fsync the directory.
ab_state_write() {
	ab_dir=${1%/*}
	mkdir -p "$ab_dir" || return 1
	printf 'active=%s\ntrial=%s\ntries=%s\nfailed=%s\n' \
		"$ab_active" "$ab_trial" "$ab_tries" "$ab_failed" >"$1.new" || return 1
	sync "$1.new" || return 1
	mv -f "$1.new" "$1" || return 1
	sync "$ab_dir"
}
