//! The applet list of a busybox binary, read from the binary itself.
//!
//! A cross build must never run a target binary, and `busybox --list` only
//! works for the build host's architecture. But every busybox keeps its
//! applet names as one sorted, NUL-separated string table
//! (`applet_names[]`, generated into `include/applet_tables.h`), which
//! starts with `[` and `[[` when those test applets are enabled (the
//! default). [`applets_in`] finds that table and reads it up to the first
//! name out of order. The table does not say where each applet is
//! installed (`/bin` or `/sbin` ...; that is a packed bit field), so every
//! link goes into `/bin`, which is on the initramfs `PATH` anyway.
//!
//! When a busybox was built without `[`/`[[` the table cannot be found;
//! the caller then needs an explicit applet list (`applets:` in the YAML).
//!
//! Rejected: running the binary (cross builds; `qemu-user` is not a build
//! dependency); a fixed built-in applet list (busybox configurations
//! differ, a link to a missing applet fails only on the device).

/// Where the applet name table starts: `"[\0[[\0"`.
const TABLE_START: &[u8] = b"[\0[[\0";
/// Fewer names than this means we matched something else.
const MIN_APPLETS: usize = 8;

/// The applet names of the busybox binary `bin`, sorted; `None` when the
/// table is not found.
pub fn applets_in(bin: &[u8]) -> Option<Vec<String>> {
    let start = bin
        .windows(TABLE_START.len())
        .position(|w| w == TABLE_START)?;
    let mut names: Vec<String> = Vec::new();
    for raw in bin[start..].split(|b| *b == 0) {
        let valid = !raw.is_empty()
            && raw.iter().all(|c| c.is_ascii_graphic() && *c != b'/')
            && names.last().is_none_or(|last| last.as_bytes() < raw);
        if !valid {
            break;
        }
        names.push(String::from_utf8_lossy(raw).into_owned());
    }
    (names.len() >= MIN_APPLETS).then_some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_sorted_table_and_stops_at_its_end() {
        let mut bin = b"\x7fELF junk [ not a table\0".to_vec();
        bin.extend_from_slice(b"[\0[[\0ash\0cat\0insmod\0ls\0mount\0sh\0switch_root\0\0usage");
        let names = applets_in(&bin).unwrap();
        assert_eq!(
            names,
            [
                "[",
                "[[",
                "ash",
                "cat",
                "insmod",
                "ls",
                "mount",
                "sh",
                "switch_root"
            ]
        );
        assert_eq!(applets_in(b"[\0[[\0a\0"), None, "too short to be a table");
    }

    #[test]
    fn matches_busybox_list_on_the_host_busybox() {
        let path = std::path::Path::new("/bin/busybox");
        let Ok(bin) = std::fs::read(path) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "busybox-static is missing in CI"
            );
            eprintln!("note: /bin/busybox not installed; skipping");
            return;
        };
        let ours = applets_in(&bin).unwrap();
        // Running it is fine here: this test runs on the host it was built for.
        let out = std::process::Command::new(path)
            .arg("--list")
            .output()
            .unwrap();
        let theirs: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(ours, theirs);
    }
}
