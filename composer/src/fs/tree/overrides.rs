//! Ownership and mode overrides applied to a scanned [`Tree`] in memory:
//! Buildroot `makedevs` device/permission tables, glob rules, and file
//! capabilities in libcap's text form.

use super::*;

impl Tree {
    /// Applies a Buildroot `makedevs` device/permission table file.
    pub fn apply_device_table(&mut self, table: &Path) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(table)
            .with_context(|| format!("reading device table '{}'", table.display()))?;
        self.apply_device_table_str(&text, &table.display().to_string())
    }

    /// Applies a device table given as text; `origin` names it in errors.
    ///
    /// Read as Buildroot's `makedevs` reads it (`package/makedevs/makedevs.c`):
    /// fields are separated by blanks, leading blanks included; a line
    /// whose first field starts with `#`, or a blank line, is skipped; a
    /// `-` ends the numeric fields (the rest count as 0, as `sscanf` stops
    /// there); paths are looked up through symlinks, `f`/`F`/`d` lines
    /// following a symlink in the last component too (makedevs' `stat`,
    /// `chown` and `chmod` do), `r` lines not (`nftw` with `FTW_PHYS`);
    /// names in the uid and gid fields are looked up in the tree's own
    /// `/etc/passwd` and `/etc/group`, the first entry of a name winning.
    pub fn apply_device_table_str(&mut self, text: &str, origin: &str) -> anyhow::Result<()> {
        let mut last: Vec<NodeId> = Vec::new();
        let mut users: Option<IdMap> = None;
        let mut groups: Option<IdMap> = None;
        for (i, line) in text.lines().enumerate() {
            let lineno = i + 1;
            let at = || format!("{origin}:{lineno}");
            let trimmed = line.trim_start();
            if let Some(rest) = trimmed.strip_prefix("|xattr") {
                let caps = rest.split_whitespace().next().ok_or_else(|| {
                    anyhow!(
                        "{}: '|xattr' needs capability text, e.g. 'cap_net_raw+ep'",
                        at()
                    )
                })?;
                if last.is_empty() {
                    bail!("{}: '|xattr' must follow the line of a file", at());
                }
                for &id in &last {
                    apply_caps(&mut self.nodes[id], caps).with_context(at)?;
                }
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.first().is_none_or(|f| f.starts_with('#')) {
                continue;
            }
            if fields.get(1).is_some_and(|t| t.parse::<i64>().is_ok()) {
                bail!(
                    "{}: this is a users table (Buildroot's mkusers format: 'name uid group gid \
                     password home shell groups comment'), not a device table; image-composer \
                     does not create users: build inside Buildroot with the Buildroot rootfs type \
                     `image-composer` (BR2_TARGET_ROOTFS_IMAGE_COMPOSER), which runs after \
                     mkusers (see docs/buildroot.md), or add the users to the tree's \
                     /etc/passwd and /etc/group",
                    at()
                );
            }
            if fields.len() < 5 {
                bail!(
                    "{}: expected 'name type mode uid gid major minor start inc count', got '{line}'",
                    at()
                );
            }
            let name = fields[0];
            let kind = fields[1];
            let mode = u32::from_str_radix(fields[2], 8)
                .map_err(|_| anyhow!("{}: mode '{}' is not an octal number", at(), fields[2]))?;
            let uid = resolve_id(fields[3], &mut users, self, "etc/passwd").with_context(at)?;
            let gid = resolve_id(fields[4], &mut groups, self, "etc/group").with_context(at)?;
            // major minor start inc count; `-` (or the end) stops the scan.
            let mut nums = [0u32; 5];
            for (k, field) in fields.iter().skip(5).take(5).enumerate() {
                if *field == "-" {
                    break;
                }
                nums[k] = field
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| n <= 0xfffff)
                    .ok_or_else(|| anyhow!("{}: '{field}' is not a number up to 1048575", at()))?;
            }
            let [major, minor, start, inc, count] = nums;
            last.clear();
            match kind {
                "d" => {
                    let id = self.resolve(name, true, true).with_context(at)?;
                    let id = id.ok_or_else(|| anyhow!("{}: cannot create '{name}'", at()))?;
                    if !self.nodes[id].is_dir() {
                        bail!("{}: '{name}' exists and is not a directory", at());
                    }
                    set_owner_mode(&mut self.nodes[id], uid, gid, mode);
                    last.push(id);
                }
                "f" | "F" => match self.resolve(name, true, false) {
                    Ok(Some(id)) if matches!(self.nodes[id].kind, NodeKind::File { .. }) => {
                        set_owner_mode(&mut self.nodes[id], uid, gid, mode);
                        last.push(id);
                    }
                    _ if kind == "F" => {}
                    Err(e) => return Err(e).with_context(at),
                    _ => bail!("{}: regular file '{name}' does not exist in the tree", at()),
                },
                "r" => {
                    let id = self
                        .resolve(name, false, false)
                        .with_context(at)?
                        .ok_or_else(|| anyhow!("{}: '{name}' does not exist in the tree", at()))?;
                    for sub in self.subtree(id) {
                        let node = &mut self.nodes[sub];
                        node.uid = uid;
                        node.gid = gid;
                        // makedevs chmods everything but symlinks.
                        if !matches!(node.kind, NodeKind::Symlink { .. }) {
                            node.mode = mode & MODE_BITS;
                        }
                    }
                    last.push(id);
                }
                "c" | "b" | "p" => {
                    let (parent_path, base) = name.rsplit_once('/').unwrap_or(("", name));
                    let parent = self
                        .resolve(parent_path, true, false)
                        .with_context(at)?
                        .filter(|&p| self.nodes[p].is_dir())
                        .ok_or_else(|| {
                            anyhow!(
                                "{}: the parent directory of '{name}' does not exist in the tree",
                                at()
                            )
                        })?;
                    let count = count.saturating_sub(1);
                    for n in start..=start.saturating_add(count) {
                        let entry = if count > 0 {
                            format!("{base}{n}")
                        } else {
                            base.to_string()
                        };
                        let minor = minor.wrapping_add((n - start).wrapping_mul(inc));
                        let node_kind = match kind {
                            "c" => NodeKind::CharDev { major, minor },
                            "b" => NodeKind::BlockDev { major, minor },
                            _ => NodeKind::Fifo,
                        };
                        let mut node = Node::new(node_kind, mode, self.time);
                        node.uid = uid;
                        node.gid = gid;
                        let id = self
                            .insert_child(parent, entry.as_bytes(), node)
                            .with_context(|| format!("{}: creating '{name}'", at()))?;
                        last.push(id);
                    }
                }
                other => bail!(
                    "{}: unsupported type '{other}' (expected one of f F d r c b p)",
                    at()
                ),
            }
        }
        Ok(())
    }

    /// The node and everything below it.
    fn subtree(&self, id: NodeId) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            out.push(n);
            if let NodeKind::Dir { entries } = &self.nodes[n].kind {
                stack.extend(entries.values().copied());
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Applies glob rules in order (a later rule wins); a rule that matches
    /// nothing is an error (it is most likely a typo). As with `chmod -h`
    /// where Linux has none, a mode never changes a symlink (its mode is
    /// always 0777 and unused); a mode rule that matches only symlinks
    /// warns. Capabilities (`caps`, `""` included) on anything but a
    /// regular file are an error, as `setcap` refuses them.
    pub fn apply_rules(&mut self, rules: &[OwnerRule]) -> anyhow::Result<()> {
        if rules.is_empty() {
            return Ok(());
        }
        let paths = self.walk();
        for rule in rules {
            let pattern = if rule.glob.starts_with('/') {
                rule.glob.clone()
            } else {
                format!("/{}", rule.glob)
            };
            let mut matched = false;
            let mut mode_changed = false;
            let mut skipped_link = None;
            for (path, id) in &paths {
                if !glob_match(pattern.as_bytes(), path) {
                    continue;
                }
                matched = true;
                let node = &mut self.nodes[*id];
                if let Some(uid) = rule.uid {
                    node.uid = uid;
                }
                if let Some(gid) = rule.gid {
                    node.gid = gid;
                }
                if let Some(mode) = rule.mode {
                    if matches!(node.kind, NodeKind::Symlink { .. }) {
                        skipped_link.get_or_insert(path);
                    } else {
                        node.mode = mode & MODE_BITS;
                        mode_changed = true;
                    }
                }
                if let Some(caps) = &rule.caps {
                    let at = || {
                        format!(
                            "applying rule '{}' to '{}'",
                            rule.glob,
                            String::from_utf8_lossy(path)
                        )
                    };
                    if caps.trim().is_empty() {
                        check_caps_target(node).with_context(at)?;
                        node.xattrs.remove(CAPABILITY_XATTR);
                    } else {
                        apply_caps(node, caps).with_context(at)?;
                    }
                }
            }
            if !matched {
                bail!(
                    "owner rule '{}' matches no path in the tree; check the glob (paths look like '/usr/bin/ping')",
                    rule.glob
                );
            }
            if let (Some(link), false) = (skipped_link, mode_changed) {
                tracing::warn!(
                    "rule '{}': the mode of a symlink is not changed ('{}'); \
                     write the path of its target to change the target's",
                    rule.glob,
                    String::from_utf8_lossy(link)
                );
            }
        }
        Ok(())
    }
}

fn set_owner_mode(node: &mut Node, uid: u32, gid: u32, mode: u32) {
    node.uid = uid;
    node.gid = gid;
    node.mode = mode & MODE_BITS;
}

/// Names to ids from the tree's own passwd or group file.
type IdMap = HashMap<String, u32>;

fn resolve_id(
    field: &str,
    cache: &mut Option<IdMap>,
    tree: &mut Tree,
    file: &str,
) -> anyhow::Result<u32> {
    if let Ok(n) = field.parse::<u32>() {
        return Ok(n);
    }
    if cache.is_none() {
        let mut map = IdMap::new();
        // fopen follows symlinks (`etc/passwd` -> `../usr/share/...`).
        if let Some(id) = tree.resolve(file, true, false)? {
            let text = tree.read_file(id)?;
            for line in String::from_utf8_lossy(&text).lines() {
                let mut parts = line.split(':');
                if let (Some(name), Some(_), Some(id)) = (parts.next(), parts.next(), parts.next())
                {
                    if let Ok(id) = id.parse::<u32>() {
                        // fgetpwent/fgetgrent stop at the first match.
                        map.entry(name.to_string()).or_insert(id);
                    }
                }
            }
        }
        *cache = Some(map);
    }
    cache
        .as_ref()
        .and_then(|m| m.get(field).copied())
        .ok_or_else(|| anyhow!("'{field}' is neither a number nor a name in the tree's /{file}"))
}

/// Matches `path` against a glob: `*`/`?` within a component, `**` across.
pub fn glob_match(pattern: &[u8], path: &[u8]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((b'*', rest)) => {
            if let Some(rest2) = rest.strip_prefix(b"*") {
                // `**/` also matches zero components.
                let rest2_noslash = rest2.strip_prefix(b"/");
                (0..=path.len()).any(|i| {
                    glob_match(rest2, &path[i..])
                        || rest2_noslash.is_some_and(|r| glob_match(r, &path[i..]))
                })
            } else {
                (0..=path.len())
                    .take_while(|&i| i == 0 || path[i - 1] != b'/')
                    .any(|i| glob_match(rest, &path[i..]))
            }
        }
        Some((b'?', rest)) => match path.split_first() {
            Some((&c, prest)) if c != b'/' => glob_match(rest, prest),
            _ => false,
        },
        Some((b'[', rest)) => {
            let Some(close) = rest.iter().skip(1).position(|&c| c == b']').map(|p| p + 1) else {
                return path.first() == Some(&b'[') && glob_match(rest, &path[1..]);
            };
            let (class, after) = (&rest[..close], &rest[close + 1..]);
            let (negate, class) = match class.split_first() {
                Some((b'!' | b'^', c)) => (true, c),
                _ => (false, class),
            };
            let Some((&c, prest)) = path.split_first() else {
                return false;
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && c != b'/' && glob_match(after, prest)
        }
        Some((&p, rest)) => path.first() == Some(&p) && glob_match(rest, &path[1..]),
    }
}

/// Capability names in bit order (`linux/capability.h`).
const CAP_NAMES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// `VFS_CAP_REVISION_2`: the `magic_etc` of a 20-byte `vfs_cap_data`.
const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
/// `VFS_CAP_REVISION_3`: a namespaced capability (with a root uid).
const VFS_CAP_REVISION_3: u32 = 0x0300_0000;
const VFS_CAP_REVISION_MASK: u32 = 0xff00_0000;
/// `VFS_CAP_FLAGS_EFFECTIVE`: raise permitted caps into effective at exec.
const VFS_CAP_FLAGS_EFFECTIVE: u32 = 1;

/// File capability sets, one bit per capability.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

impl Caps {
    /// Decodes a `security.capability` value (revision 2 or 3).
    pub fn decode(value: &[u8]) -> Option<Caps> {
        let word = |i: usize| -> Option<u32> {
            value
                .get(i * 4..i * 4 + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let magic = word(0)?;
        match magic & VFS_CAP_REVISION_MASK {
            VFS_CAP_REVISION_2 | VFS_CAP_REVISION_3 => {}
            _ => return None,
        }
        let permitted = u64::from(word(1)?) | (u64::from(word(3)?) << 32);
        let inheritable = u64::from(word(2)?) | (u64::from(word(4)?) << 32);
        let effective = if magic & VFS_CAP_FLAGS_EFFECTIVE != 0 {
            permitted | inheritable
        } else {
            0
        };
        Some(Caps {
            effective,
            permitted,
            inheritable,
        })
    }

    /// Encodes as a revision-2 `security.capability` value (20 bytes).
    pub fn encode(&self) -> Vec<u8> {
        let flags = if self.effective != 0 {
            VFS_CAP_FLAGS_EFFECTIVE
        } else {
            0
        };
        let mut out = Vec::with_capacity(20);
        for w in [
            VFS_CAP_REVISION_2 | flags,
            self.permitted as u32,
            self.inheritable as u32,
            (self.permitted >> 32) as u32,
            (self.inheritable >> 32) as u32,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Applies libcap text (`cap_net_raw+ep`, `cap_a,cap_b=eip`, `all=ep`)
    /// on top of these sets, like `cap_from_text` on the concatenation.
    pub fn apply_text(&mut self, text: &str) -> anyhow::Result<()> {
        for clause in text.split_whitespace() {
            let op_at = clause
                .find(['=', '+', '-'])
                .ok_or_else(|| anyhow!("capability clause '{clause}' has no '=', '+' or '-'"))?;
            let (list, mut actions) = clause.split_at(op_at);
            let mut bits = 0u64;
            if list.is_empty() || list.eq_ignore_ascii_case("all") {
                bits = (1u64 << CAP_NAMES.len()) - 1;
            } else {
                for name in list.split(',') {
                    let lower = name.to_ascii_lowercase();
                    let short = lower.strip_prefix("cap_").unwrap_or(&lower);
                    let bit = CAP_NAMES
                        .iter()
                        .position(|n| *n == short)
                        .or_else(|| short.parse::<usize>().ok().filter(|&b| b < 64))
                        .ok_or_else(|| anyhow!("unknown capability '{name}' in '{clause}'"))?;
                    bits |= 1u64 << bit;
                }
            }
            while let Some(op) = actions.chars().next() {
                actions = &actions[1..];
                let flags_end = actions.find(['=', '+', '-']).unwrap_or(actions.len());
                let (flags, rest) = actions.split_at(flags_end);
                actions = rest;
                if op == '=' {
                    self.effective &= !bits;
                    self.permitted &= !bits;
                    self.inheritable &= !bits;
                }
                for f in flags.chars() {
                    let set = match f.to_ascii_lowercase() {
                        'e' => &mut self.effective,
                        'p' => &mut self.permitted,
                        'i' => &mut self.inheritable,
                        _ => bail!("unknown capability flag '{f}' in '{clause}' (use e, i, p)"),
                    };
                    if op == '-' {
                        *set &= !bits;
                    } else {
                        *set |= bits;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Capabilities belong to regular files only: libcap's `cap_set_file`
/// (setcap) refuses directories, symlinks and special files.
fn check_caps_target(node: &Node) -> anyhow::Result<()> {
    let what = match node.kind {
        NodeKind::File { .. } => return Ok(()),
        NodeKind::Dir { .. } => "a directory",
        NodeKind::Symlink { .. } => "a symlink",
        _ => "a special file",
    };
    bail!(
        "capabilities can only be set on regular files, and this is {what} \
         (setcap refuses it too); name the file itself"
    )
}

/// Adds libcap capability text to a node's `security.capability`.
fn apply_caps(node: &mut Node, text: &str) -> anyhow::Result<()> {
    check_caps_target(node)?;
    let mut caps = node
        .xattrs
        .get(CAPABILITY_XATTR)
        .and_then(|v| Caps::decode(v))
        .unwrap_or_default();
    caps.apply_text(text)?;
    if caps == Caps::default() {
        node.xattrs.remove(CAPABILITY_XATTR);
    } else {
        node.xattrs.insert(CAPABILITY_XATTR.to_vec(), caps.encode());
    }
    Ok(())
}
