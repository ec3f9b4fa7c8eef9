//! Kernel modules for an initramfs: names in, the files to pack and their
//! load order out.
//!
//! Resolution follows what `modprobe` does with the files `depmod` writes
//! into `/lib/modules/<version>/`:
//! - a requested name is a module name (`virtio_blk`; `-` and `_` are the
//!   same), else an exact alias from `modules.alias` (`crc32c`,
//!   `fs-overlay`; every module carrying it is taken, as modprobe does),
//!   else a built-in module listed in `modules.builtin` (nothing to pack);
//!   anything else is an error naming the directory;
//! - dependencies come from `modules.dep` and are loaded first (depth
//!   first, each module once);
//! - `softdep` lines of `modules.softdep` add `pre:` modules before and
//!   `post:` modules after (names before the first `pre:`/`post:` are
//!   ignored, as kmod's parser does) (ext4 and jbd2 need `crypto-crc32c`, which the
//!   kernel cannot request without modprobe in the initramfs).
//!   A soft dependency that does not resolve is skipped, as modprobe does.
//!
//! The result is the list of module paths relative to the modules directory,
//! in load order. Compressed modules (`.ko.xz`, `.ko.zst`, `.ko.gz`) are
//! unpacked at build time (see `compress::decompress`).
//!
//! Rejected: reading the binary `.bin` indexes (the text files carry the
//! same facts and every depmod writes both); running `modprobe
//! --show-depends` (host tool, host config, needs the exact layout).

use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The facts of one modules directory.
#[derive(Debug, Default)]
pub struct ModuleIndex {
    /// Module name → its path and the paths of its dependencies.
    deps: BTreeMap<String, (String, Vec<String>)>,
    /// Path → module name.
    names: BTreeMap<String, String>,
    /// Alias → module names (exact aliases only; wildcard ones match
    /// hardware ids and are of no use here).
    aliases: BTreeMap<String, Vec<String>>,
    /// Module → (pre, post) soft dependencies.
    softdeps: BTreeMap<String, (Vec<String>, Vec<String>)>,
    builtin: BTreeSet<String>,
}

/// `ext4`, `virtio-blk` → the canonical module name (`virtio_blk`).
fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

/// `kernel/fs/ext4/ext4.ko.xz` → `ext4`.
fn name_of_path(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.split(".ko").next().unwrap_or(base);
    canonical(stem)
}

impl ModuleIndex {
    /// Reads `modules.dep` (required), `modules.alias`, `modules.softdep`
    /// and `modules.builtin` (each optional) from `dir`.
    pub fn load(dir: &Path) -> Result<ModuleIndex> {
        let read = |name: &str, required: bool| -> Result<String> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(s) => Ok(s),
                Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                    Ok(String::new())
                }
                Err(e) => Err(e).with_context(|| format!("reading '{}'", path.display())),
            }
        };
        Ok(ModuleIndex::parse(
            &read("modules.dep", true)?,
            &read("modules.alias", false)?,
            &read("modules.softdep", false)?,
            &read("modules.builtin", false)?,
        ))
    }

    /// Parses the text forms of the depmod files.
    pub fn parse(dep: &str, alias: &str, softdep: &str, builtin: &str) -> ModuleIndex {
        let mut idx = ModuleIndex::default();
        for line in dep.lines() {
            let Some((path, rest)) = line.split_once(':') else {
                continue;
            };
            let path = path.trim().to_string();
            let name = name_of_path(&path);
            let list = rest.split_whitespace().map(str::to_string).collect();
            idx.names.insert(path.clone(), name.clone());
            idx.deps.insert(name, (path, list));
        }
        for line in alias.lines() {
            let mut w = line.split_whitespace();
            if let (Some("alias"), Some(a), Some(m)) = (w.next(), w.next(), w.next()) {
                if !a.contains(['*', '?', '[']) {
                    idx.aliases
                        .entry(canonical(a))
                        .or_default()
                        .push(canonical(m));
                }
            }
        }
        for line in softdep.lines() {
            let mut w = line.split_whitespace();
            if w.next() != Some("softdep") {
                continue;
            }
            let Some(module) = w.next() else { continue };
            let entry = idx.softdeps.entry(canonical(module)).or_default();
            // As kmod's `kmod_config_add_softdep`: names before the first
            // `pre:` or `post:` belong to neither and are ignored.
            let mut into = None;
            for word in w {
                match (word, into) {
                    ("pre:", _) => into = Some(false),
                    ("post:", _) => into = Some(true),
                    (m, Some(false)) => entry.0.push(m.to_string()),
                    (m, Some(true)) => entry.1.push(m.to_string()),
                    (_, None) => {}
                }
            }
        }
        idx.builtin = builtin.lines().map(name_of_path).collect();
        idx
    }

    /// The modules a requested name stands for; empty when it is built in.
    fn lookup(&self, requested: &str) -> Option<Vec<String>> {
        let name = canonical(requested);
        if self.deps.contains_key(&name) {
            return Some(vec![name]);
        }
        if let Some(mods) = self.aliases.get(&name) {
            let found: Vec<String> = mods
                .iter()
                .filter(|m| self.deps.contains_key(*m))
                .cloned()
                .collect();
            if !found.is_empty() {
                return Some(found);
            }
        }
        if self.builtin.contains(&name) {
            return Some(Vec::new());
        }
        None
    }

    /// Module paths (relative to the modules directory) in load order for
    /// the requested names.
    pub fn resolve(&self, requested: &[String], dir: &Path) -> Result<Vec<String>> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        for r in requested {
            let Some(mods) = self.lookup(r) else {
                bail!(
                    "kernel module '{r}' is not in '{}' (neither a module in modules.dep, \
                     an alias in modules.alias nor built in)",
                    dir.display()
                );
            };
            for m in mods {
                self.visit(&m, &mut seen, &mut order);
            }
        }
        Ok(order)
    }

    fn visit(&self, name: &str, seen: &mut BTreeSet<String>, order: &mut Vec<String>) {
        if !seen.insert(name.to_string()) {
            return;
        }
        let Some((path, deps)) = self.deps.get(name) else {
            return;
        };
        let (pre, post) = self.softdeps.get(name).cloned().unwrap_or_default();
        for soft in &pre {
            for m in self.lookup(soft).unwrap_or_default() {
                self.visit(&m, seen, order);
            }
        }
        for dep in deps {
            if let Some(dep_name) = self.names.get(dep) {
                self.visit(dep_name, seen, order);
            }
        }
        order.push(path.clone());
        for soft in &post {
            for m in self.lookup(soft).unwrap_or_default() {
                self.visit(&m, seen, order);
            }
        }
    }

    /// The `modules.dep` lines for `packed` (paths as packed, `.ko`), so
    /// that busybox `modprobe` works in a rescue shell.
    pub fn dep_lines(&self, packed: &[String], rename: impl Fn(&str) -> String) -> String {
        let mut out = String::new();
        for path in packed {
            let deps = self
                .names
                .get(path)
                .and_then(|n| self.deps.get(n))
                .map(|(_, d)| d.iter().map(|d| rename(d)).collect::<Vec<_>>())
                .unwrap_or_default();
            out.push_str(&format!("{}: {}\n", rename(path), deps.join(" ")));
        }
        out
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    const DEP: &str = "\
kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko.xz kernel/fs/mbcache.ko.xz kernel/fs/jbd2/jbd2.ko.xz
kernel/lib/crc16.ko.xz:
kernel/fs/mbcache.ko.xz:
kernel/fs/jbd2/jbd2.ko.xz:
kernel/crypto/crc32c_generic.ko.xz:
kernel/arch/x86/crypto/crc32c-intel.ko.xz:
kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz kernel/drivers/virtio/virtio.ko.xz
kernel/drivers/virtio/virtio.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz
kernel/drivers/virtio/virtio_ring.ko.xz:
";
    const ALIAS: &str = "\
alias crypto-crc32c crc32c_intel
alias crypto-crc32c crc32c_generic
alias pci:v00001AF4d00001001sv*sd*bc*sc*i* virtio_blk
";
    const SOFTDEP: &str = "softdep ext4 pre: crypto-crc32c\nsoftdep jbd2 pre: crypto-crc32c\n";

    fn index() -> ModuleIndex {
        ModuleIndex::parse(DEP, ALIAS, SOFTDEP, "kernel/fs/overlayfs/overlay.ko\n")
    }

    fn resolve(names: &[&str]) -> Result<Vec<String>> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        index().resolve(&names, Path::new("/lib/modules/x"))
    }

    #[test]
    fn dependencies_and_soft_dependencies_come_first_once() {
        let order = resolve(&["ext4", "virtio-blk", "ext4"]).unwrap();
        let names: Vec<String> = order.iter().map(|p| name_of_path(p)).collect();
        assert_eq!(
            names,
            [
                "crc32c_intel",
                "crc32c_generic",
                "crc16",
                "mbcache",
                "jbd2",
                "ext4",
                "virtio_ring",
                "virtio",
                "virtio_blk"
            ]
        );
    }

    #[test]
    fn softdep_names_before_pre_or_post_are_ignored_like_kmod() {
        let idx = ModuleIndex::parse(
            DEP,
            ALIAS,
            "softdep virtio_blk virtio_ring\nsoftdep ext4 crc16 pre: mbcache post: virtio\n",
            "",
        );
        assert_eq!(idx.softdeps["virtio_blk"], (vec![], vec![]));
        assert_eq!(
            idx.softdeps["ext4"],
            (vec!["mbcache".to_string()], vec!["virtio".to_string()])
        );
    }

    #[test]
    fn aliases_and_builtins_resolve_unknown_names_fail() {
        assert_eq!(resolve(&["crypto-crc32c"]).unwrap().len(), 2);
        assert_eq!(resolve(&["overlay"]).unwrap(), Vec::<String>::new());
        let err = resolve(&["nosuch"]).unwrap_err().to_string();
        assert_eq!(
            err,
            "kernel module 'nosuch' is not in '/lib/modules/x' (neither a module in \
             modules.dep, an alias in modules.alias nor built in)"
        );
    }

    #[test]
    fn dep_lines_describe_the_packed_subset() {
        let order = resolve(&["virtio_blk"]).unwrap();
        let lines = index().dep_lines(&order, |p| p.replace(".ko.xz", ".ko"));
        assert_eq!(
            lines,
            "kernel/drivers/virtio/virtio_ring.ko: \n\
             kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\n\
             kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n"
        );
    }

    /// The modules directory of the installed Debian kernel (package
    /// linux-image-amd64); `None` (a note, or a failure in CI) without one.
    pub(in crate::fs::cpio) fn installed_modules_dir() -> Option<std::path::PathBuf> {
        let dir = std::fs::read_dir("/lib/modules")
            .ok()
            .and_then(|mut d| d.find_map(|e| e.ok().map(|e| e.path())))
            .filter(|d| d.join("modules.dep").exists());
        if dir.is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "linux-image-amd64 is missing in CI"
            );
            eprintln!("note: no /lib/modules/*/modules.dep; skipping");
        }
        dir
    }

    #[test]
    fn resolves_the_boot_set_of_the_installed_debian_kernel() {
        let Some(dir) = installed_modules_dir() else {
            return;
        };
        let idx = ModuleIndex::load(&dir).unwrap();
        let want: Vec<String> = ["virtio_pci", "virtio_blk", "ext4", "overlay", "vfat"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let order = idx.resolve(&want, &dir).unwrap();
        let names: Vec<String> = order.iter().map(|p| name_of_path(p)).collect();
        let pos = |n: &str| names.iter().position(|m| m == n);
        for (before, after) in [
            ("virtio", "virtio_pci"),
            ("virtio_ring", "virtio_blk"),
            ("jbd2", "ext4"),
            ("mbcache", "ext4"),
            ("crc32c_generic", "ext4"),
            ("fat", "vfat"),
        ] {
            assert!(
                pos(before).unwrap() < pos(after).unwrap(),
                "{before} before {after}: {names:?}"
            );
        }
        for p in &order {
            assert!(dir.join(p).is_file(), "{p} exists");
        }
    }
}
