//! What the running system says about its slots, and the few state changes
//! the installer makes besides writing the slot: the keys and the
//! compatible string in the root filesystem, `/run/ab/{slot,trial}` and the
//! state file of the ab-slots initramfs hook, the slot devices from the
//! kernel command line (`rootA=`, `rootB=`, `rootos=`, as the hook reads
//! them), block devices from sysfs, mounts from /proc/self/mountinfo,
//! `versions.conf` on the OS-image partition.
//!
//! Every path is under `AB_ROOT` (default `/`), and `ab-switch`/`mount`
//! can be replaced (`AB_SWITCH`, `AB_MOUNT`), so the same code runs in the
//! host tests against a directory that plays the device.

use crate::{file_name, under};
use bundle::{Manifest, SlotKind, VerifyingKey};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const KEYS_DIR: &str = "/etc/image-composer/keys";
pub const COMPATIBLE_FILE: &str = "/etc/image-composer/compatible";
/// Where the hook mounts the config partition and the OS-image partition.
const CONFIG_DIR: &str = "/media/config";
const OS_DIR: &str = "/media/rfs/os";
/// A file being written on the OS-image partition; removed by the next run.
pub const PARTIAL_SUFFIX: &str = ".ab-install.partial";

pub struct Device {
    root: PathBuf,
    switch: String,
    mount: String,
}

/// The running slot and the one to write.
pub struct Slots {
    pub running: char,
    pub target: char,
    /// The state names a trial of `target` that has not booted yet.
    pub pending_trial_of_target: bool,
    cmdline: Vec<(String, String)>,
}

impl Slots {
    /// The last `key=` of the kernel command line.
    fn arg(&self, key: &str) -> Option<String> {
        self.cmdline
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
}

/// Where the slot contents go.
pub enum Slot {
    Partition(PathBuf),
    /// A new image file `name` in `dir` (the mounted OS-image partition);
    /// `old`: the file the target slot's line named, to delete.
    File {
        dir: PathBuf,
        name: String,
        old: Option<String>,
    },
}

impl Device {
    pub fn from_env() -> Device {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        Device {
            root: PathBuf::from(var("AB_ROOT", "/")),
            switch: var("AB_SWITCH", "ab-switch"),
            mount: var("AB_MOUNT", "mount"),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        under(&self.root, p)
    }

    fn read(&self, p: &str) -> Result<String, String> {
        let path = self.path(p);
        std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    }

    /// Every `*.pub` in the keys directory.
    pub fn trusted_keys(&self) -> Result<Vec<VerifyingKey>, String> {
        let dir = self.path(KEYS_DIR);
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| format!("no trusted keys: cannot read {}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pub"))
            .collect();
        names.sort();
        if names.is_empty() {
            return Err(format!("no trusted keys: no *.pub in {}", dir.display()));
        }
        names
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                bundle::decode_public_key(&text).map_err(|e| format!("{}: {e}", p.display()))
            })
            .collect()
    }

    pub fn compatible(&self) -> Result<String, String> {
        let text = self.read(COMPATIBLE_FILE)?;
        Ok(text.trim().to_string())
    }

    pub fn slots(&self) -> Result<Slots, String> {
        let running = match self.read("/run/ab/slot")?.trim() {
            "A" => 'A',
            "B" => 'B',
            other => return Err(format!("/run/ab/slot says '{other}', not A or B")),
        };
        if self.read("/run/ab/trial").unwrap_or_default().trim() == "yes" {
            return Err(format!(
                "slot {running} runs on trial: confirm it (ab-mark-good) or reboot before installing"
            ));
        }
        let target = if running == 'A' { 'B' } else { 'A' };
        let state =
            std::fs::read_to_string(self.path(CONFIG_DIR).join("ab/state")).unwrap_or_default();
        let pending_trial_of_target = state.lines().any(|l| l == format!("trial={target}"));
        let cmdline = self
            .read("/proc/cmdline")?
            .split_whitespace()
            .filter_map(|a| a.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Slots {
            running,
            target,
            pending_trial_of_target,
            cmdline,
        })
    }

    /// Where the slot contents of `manifest` go on this device; refuses a
    /// target that is mounted, too small or of the other slot kind.
    pub fn target(&self, slots: &Slots, manifest: &Manifest) -> Result<Slot, String> {
        let arg = |k: &str| slots.arg(k);
        let images = arg("rootos").is_some();
        match (&manifest.slot, images) {
            (SlotKind::Partition, false) => {
                let dev = self.slot_device(slots, slots.target)?;
                self.check_unmounted(&dev)?;
                let size = self.device_size(&dev)?;
                if manifest.slot_size > size {
                    return Err(format!(
                        "slot {} ({}) holds {size} bytes, the bundle needs {}",
                        slots.target,
                        dev.display(),
                        manifest.slot_size
                    ));
                }
                Ok(Slot::Partition(dev))
            }
            (SlotKind::File { .. }, true) => {
                let dir = self.path(OS_DIR);
                let versions = read_versions(&dir)?;
                let line = |s: char| {
                    versions
                        .iter()
                        .find(|(k, _)| *k == s)
                        .map(|(_, v)| v.clone())
                };
                let running = line(slots.running).ok_or_else(|| {
                    format!(
                        "versions.conf names no file for the running slot {}",
                        slots.running
                    )
                })?;
                let name = file_name(slots.target, &manifest.slot).unwrap_or_default();
                if name == running {
                    return Err(format!("'{name}' is the running slot's image file"));
                }
                let old = line(slots.target).filter(|o| *o != running && *o != name);
                Ok(Slot::File { dir, name, old })
            }
            (SlotKind::Partition, true) => {
                Err("the bundle holds a partition, this device boots image files (rootos=)".into())
            }
            (SlotKind::File { .. }, false) => Err(
                "the bundle holds an image file, this device boots partitions (no rootos=)".into(),
            ),
        }
    }

    /// The running slot's contents, to read a delta's base from: its
    /// partition, or the image file its `versions.conf` line names.
    pub fn running_slot(&self, slots: &Slots) -> Result<PathBuf, String> {
        if slots.arg("rootos").is_none() {
            return self.slot_device(slots, slots.running);
        }
        let dir = self.path(OS_DIR);
        read_versions(&dir)?
            .into_iter()
            .find(|(k, _)| *k == slots.running)
            .map(|(_, name)| dir.join(name))
            .ok_or_else(|| {
                format!(
                    "versions.conf names no file for the running slot {}",
                    slots.running
                )
            })
    }

    /// The partition of `slot` (`rootA=`/`rootB=`, else `PARTLABEL=root<slot>`).
    fn slot_device(&self, slots: &Slots, slot: char) -> Result<PathBuf, String> {
        let spec = slots
            .arg(&format!("root{slot}"))
            .unwrap_or_else(|| format!("PARTLABEL=root{slot}"));
        self.resolve(&spec)
    }

    /// `/dev/...` as is; `PARTLABEL=name` through sysfs (no udev needed).
    fn resolve(&self, spec: &str) -> Result<PathBuf, String> {
        if spec.starts_with('/') {
            return Ok(self.path(spec));
        }
        let Some(label) = spec.strip_prefix("PARTLABEL=") else {
            return Err(format!(
                "cannot resolve the slot device '{spec}': use a /dev path or PARTLABEL="
            ));
        };
        let sys = self.path("/sys/class/block");
        let entries =
            std::fs::read_dir(&sys).map_err(|e| format!("reading {}: {e}", sys.display()))?;
        for e in entries.flatten() {
            let uevent = std::fs::read_to_string(e.path().join("uevent")).unwrap_or_default();
            if uevent.lines().any(|l| l == format!("PARTNAME={label}")) {
                if let Some(name) = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME=")) {
                    return Ok(self.path(&format!("/dev/{name}")));
                }
            }
        }
        Err(format!(
            "no partition labelled '{label}' in {}",
            sys.display()
        ))
    }

    /// Refuses a block device that is mounted anywhere (the running root's
    /// lower layer, or anything else): the installer never writes to it.
    fn check_unmounted(&self, dev: &Path) -> Result<(), String> {
        let meta = std::fs::metadata(dev).map_err(|e| format!("{}: {e}", dev.display()))?;
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        if !meta.file_type().is_block_device() {
            return Ok(());
        }
        let rdev = meta.rdev();
        let id = format!("{}:{}", rustix::fs::major(rdev), rustix::fs::minor(rdev));
        let mounts = self.read("/proc/self/mountinfo")?;
        if mounts
            .lines()
            .any(|l| l.split(' ').nth(2) == Some(id.as_str()))
        {
            return Err(format!(
                "{} ({id}) is mounted: it is in use, not an inactive slot",
                dev.display()
            ));
        }
        Ok(())
    }

    fn device_size(&self, dev: &Path) -> Result<u64, String> {
        let f = std::fs::File::open(dev).map_err(|e| format!("opening {}: {e}", dev.display()))?;
        let mut f = f;
        std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0))
            .map_err(|e| format!("sizing {}: {e}", dev.display()))
    }

    /// Runs `ab-switch ARG`.
    pub fn switch(&self, arg: &str) -> Result<(), String> {
        run(Command::new(&self.switch).arg(arg))
    }

    /// Stores `signed` (a bundle's header, manifest and signature) as
    /// `ab/slot-<slot>.manifest` on the config partition, or removes that
    /// file when `signed` is None: new file, fsync, rename, fsync of the
    /// directory, so a power cut leaves the old or the new file whole. The
    /// partition is remounted read-write only when something changes.
    pub fn store_slot_manifest(&self, slot: char, signed: Option<&[u8]>) -> Result<(), String> {
        let config = self.path(CONFIG_DIR);
        let dir = config.join("ab");
        let path = dir.join(format!("slot-{slot}.manifest"));
        if signed.is_none() && !path.exists() {
            return Ok(());
        }
        let _rw = self.remount_rw(&config)?;
        let failed = |e: std::io::Error| format!("storing {}: {e}", path.display());
        match signed {
            Some(bytes) => {
                let new = dir.join(format!("slot-{slot}.manifest.new"));
                std::fs::create_dir_all(&dir).map_err(failed)?;
                let mut f = std::fs::File::create(&new).map_err(failed)?;
                f.write_all(bytes)
                    .and_then(|()| f.sync_all())
                    .map_err(failed)?;
                std::fs::rename(&new, &path).map_err(failed)?;
            }
            None => std::fs::remove_file(&path)
                .map_err(|e| format!("removing the stale {}: {e}", path.display()))?,
        }
        sync_dir(&dir)
    }

    /// Remounts `dir` read-write until the guard is dropped.
    pub fn remount_rw<'d>(&'d self, dir: &'d Path) -> Result<ReadWrite<'d>, String> {
        run(Command::new(&self.mount)
            .args(["-o", "remount,rw"])
            .arg(dir))?;
        Ok(ReadWrite { device: self, dir })
    }
}

/// The OS-image partition, read-write while it lives.
pub struct ReadWrite<'d> {
    device: &'d Device,
    dir: &'d Path,
}

impl Drop for ReadWrite<'_> {
    fn drop(&mut self) {
        rustix::fs::sync();
        if let Err(e) = run(Command::new(&self.device.mount)
            .args(["-o", "remount,ro"])
            .arg(self.dir))
        {
            eprintln!("ab-install: warning: {e}");
        }
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(format!("{cmd:?} failed ({}): {}", out.status, err.trim()))
}

/// `versions.conf`: `A=file` / `B=file` lines.
fn read_versions(dir: &Path) -> Result<Vec<(char, String)>, String> {
    let path = dir.join("versions.conf");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            let slot = match k {
                "A" => 'A',
                "B" => 'B',
                _ => return None,
            };
            Some((slot, v.to_string()))
        })
        .collect())
}

/// Removes partial files of interrupted runs and the target's old image.
pub fn remove_leftovers(dir: &Path, old: Option<&str>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(PARTIAL_SUFFIX) || Some(name.as_str()) == old {
            std::fs::remove_file(e.path())
                .map_err(|err| format!("removing {}: {err}", e.path().display()))?;
        }
    }
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> Result<(), String> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("syncing {}: {e}", dir.display()))
}

/// Points `slot`'s line of `versions.conf` at `name`: a new file, synced,
/// renamed over the old one, directory synced. Other lines are kept.
pub fn point_slot(dir: &Path, slot: char, name: &str) -> Result<(), String> {
    let path = dir.join("versions.conf");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let prefix = format!("{slot}=");
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    lines.push(format!("{slot}={name}"));
    let new = dir.join("versions.conf.new");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&new)?;
        f.write_all((lines.join("\n") + "\n").as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&new, &path)
    };
    write().map_err(|e| format!("replacing {}: {e}", path.display()))?;
    sync_dir(dir)
}
