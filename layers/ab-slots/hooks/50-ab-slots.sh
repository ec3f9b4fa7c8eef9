# Hook of the readonly-rootfs-overlay /init (sourced, busybox sh): chooses
# the A/B slot, runs the trial-boot state machine (README.md beside this
# file) and points the root and the overlay's upper directory at the slot.
# Uses the /init's functions: msg, fatal, wait_for, mount_dev.

. /usr/lib/ab-slots/ab-state.sh

rootslot=
rootA=PARTLABEL=rootA
rootB=PARTLABEL=rootB
rootconfig=PARTLABEL=config
rootconfigfstype=
rootslottries=1
rootos=
rootosfstype=
rootcmdline=
roothashA=
roothashB=
roothashoffsetA=
roothashoffsetB=
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	rootslot=*|rootA=*|rootB=*|rootconfig=*|rootconfigfstype=*|rootslottries=*|rootos=*|rootosfstype=*|\
	roothashA=*|roothashB=*|roothashoffsetA=*|roothashoffsetB=*)
		eval "${arg%%=*}=\${arg#*=}" ;;
	root=*) rootcmdline=${arg#root=} ;;
	esac
done
case "$rootslottries" in ''|*[!0-9]*|0) rootslottries=1 ;; esac

if [ -n "$rootcmdline" ]; then
	msg "root= given on the command line: A/B slot selection is off"
else
	CONFIG=/media/config
	STATE=$CONFIG/ab/state
	mkdir -p "$CONFIG"
	cfgdev=$(wait_for config "$rootconfig")
	mount_dev config "$cfgdev" "$CONFIG" "$rootconfigfstype" rw,noatime
	ab_state_read "$STATE"
	ab_booted_trial=no
	if [ -n "$rootslot" ]; then
		case "$rootslot" in A|B) ;; *) fatal "rootslot=$rootslot: use A or B" ;; esac
		slot=$rootslot
		msg "slot $slot (rootslot= on the command line; state unchanged)"
	elif [ -n "$ab_trial" ] && [ "$ab_trial" != "$ab_active" ]; then
		if [ "$ab_tries" -lt "$rootslottries" ]; then
			# A newly installed slot starts from an empty upper layer: files
			# its previous contents changed must not shadow the new ones.
			[ "$ab_tries" -eq 0 ] && resetupper=yes
			ab_tries=$((ab_tries + 1))
			ab_state_write "$STATE" || fatal "cannot record the trial boot of slot $ab_trial"
			slot=$ab_trial
			ab_booted_trial=yes
			msg "slot $slot: trial boot $ab_tries of $rootslottries (confirmed slot: $ab_active)"
		else
			msg "slot $ab_trial: trial not confirmed after $ab_tries boot(s); falling back to slot $ab_active"
			ab_failed=$ab_trial ab_trial= ab_tries=0
			ab_state_write "$STATE" || fatal "cannot record the fallback to slot $ab_active"
			slot=$ab_active
		fi
	else
		slot=$ab_active
		msg "slot $slot"
	fi
	mount -o remount,ro "$CONFIG" || fatal "cannot remount $CONFIG read-only"
	extramounts="$extramounts $CONFIG:$CONFIG"
	upperbase=slots/$slot
	mkdir -p /run/ab
	echo "$slot" >/run/ab/slot
	echo "$ab_booted_trial" >/run/ab/trial

	if [ -n "$rootos" ]; then
		# The "image files on one OS partition" variant: versions.conf maps
		# a slot to the image file to loop-mount read-only.
		OS=/media/rfs/os
		mkdir -p "$OS"
		osdev=$(wait_for os "$rootos")
		mount_dev "OS image partition" "$osdev" "$OS" "$rootosfstype" ro
		image=$(sed -n "s/^$slot=//p" "$OS/versions.conf" 2>/dev/null | head -n 1)
		[ -n "$image" ] || fatal "no '$slot=' line in versions.conf on $osdev"
		rootimage=$OS/$image
		extramounts="$extramounts $OS:$OS"
	else
		eval "root=\$root$slot"
	fi
	# The chosen slot's own dm-verity root hash and offset, when given,
	# replace the /init's roothash= and roothashoffset=.
	eval "slothash=\$roothash$slot slothashoffset=\$roothashoffset$slot"
	if [ -n "$slothash" ]; then roothash=$slothash; fi
	if [ -n "$slothashoffset" ]; then roothashoffset=$slothashoffset; fi
	# A slot ab-install wrote from a bundle with dm-verity values: the
	# signed manifest it stored replaces both (the /init's ab-install
	# verity-open checks its signature; a bad one fails this boot).
	if [ -z "$rootos" ] && [ -f "$CONFIG/ab/slot-$slot.manifest" ]; then
		roothashmanifest=$CONFIG/ab/slot-$slot.manifest
		msg "slot $slot: dm-verity values from ab/slot-$slot.manifest (installed from a bundle)"
	fi
fi
