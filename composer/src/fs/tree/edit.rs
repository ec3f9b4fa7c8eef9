//! Editing a scanned [`Tree`] before it is written: overlaying another
//! tree onto it ([`Tree::merge`]) and removing entries by glob
//! ([`Tree::exclude`]). These are the only two ways a tree is combined or
//! cut, and every writer that takes a tree (ext4, squashfs, EROFS, vfat,
//! the cpio initramfs) gets its tree through them: several `from:` trees,
//! `exclude:` patterns and `files:` entries naming a directory.
//!
//! Merging follows `rsync -a --keep-dirlinks` of each tree in order, which
//! is how Buildroot copies its rootfs overlays onto `TARGET_DIR`: entry by
//! entry, the later tree wins; a directory present in both is merged, and
//! takes the later one's owner, mode, times and xattrs; any other pair
//! (file over file, file over directory, directory over file or symlink)
//! is a replacement, and a replaced directory goes with its whole subtree.
//! A directory of the later tree meeting a symlink that leads (inside the
//! tree) to a directory is merged into that directory, so an overlay's
//! `/bin/x` lands in `/usr/bin/x` of a merged-/usr tree. Hard links stay
//! links within the tree they were scanned from; a replaced path leaves the
//! other names of its old inode as they were.
//!
//! Excluding follows wic's `--exclude-path`, with globs: a pattern names
//! entries by absolute path in the tree (the [`glob_match`] of rules:
//! `*` and `?` within a component, `**` across); a matched directory goes
//! with its whole subtree; a pattern ending in `/` keeps the directory it
//! names and removes what it holds (wic's trailing slash). Hard links lose
//! only the names excluded.
//!
//! After either edit the tree is compacted: nodes no longer reachable from
//! the root are dropped, so writers that count nodes (inodes, link counts)
//! see only what is written.
//!
//! Rejected designs: filtering while scanning (a later tree's entries
//! replace what an earlier one had, so the scan of one tree cannot decide;
//! and `files:` directories and `from:` trees would need two code paths);
//! per-writer exclusion lists (five copies of one rule).

use super::*;

impl Tree {
    /// Overlays `other` onto the directory `at` of this tree (see the
    /// module documentation for the rules); `at`'s own metadata becomes
    /// that of `other`'s root.
    pub fn merge(&mut self, at: NodeId, other: &Tree) -> anyhow::Result<()> {
        if !self.nodes[at].is_dir() {
            bail!("node {at} is not a directory");
        }
        let mut copied = HashMap::new();
        self.merge_dir(at, other, ROOT, &mut copied);
        self.compact();
        Ok(())
    }

    /// Overlays `other` at `path` (`files: { /opt/app: app-dir/ }`): the
    /// missing parents are created (mode 0755, root, build time), a
    /// non-directory at `path` is replaced, a directory there is merged
    /// into, by the rules of [`Tree::merge`].
    pub fn graft(&mut self, path: &str, other: &Tree) -> anyhow::Result<()> {
        let parts = components(path)?;
        let Some((name, parents)) = parts.split_last() else {
            return self.merge(ROOT, other);
        };
        let parent_path: Vec<String> = parents
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        let parent = self.mkdir_all(&parent_path.join("/"))?;
        let at = match self.child(parent, name) {
            Some(c) if self.nodes[c].is_dir() => c,
            _ => self.new_dir_entry(parent, name),
        };
        self.merge(at, other)
    }

    fn merge_dir(
        &mut self,
        dir: NodeId,
        other: &Tree,
        from: NodeId,
        copied: &mut HashMap<NodeId, NodeId>,
    ) {
        let source = &other.nodes[from];
        let NodeKind::Dir { entries } = &source.kind else {
            return;
        };
        let target = &mut self.nodes[dir];
        target.mode = source.mode;
        (target.uid, target.gid) = (source.uid, source.gid);
        (target.atime, target.mtime, target.ctime) = (source.atime, source.mtime, source.ctime);
        target.xattrs.clone_from(&source.xattrs);
        for (name, &child) in entries {
            if other.nodes[child].is_dir() {
                let into = match self.child(dir, name) {
                    Some(c) if self.nodes[c].is_dir() => c,
                    Some(c) => match self.link_to_dir(dir, c) {
                        Some(d) => d,
                        None => self.new_dir_entry(dir, name),
                    },
                    None => self.new_dir_entry(dir, name),
                };
                self.merge_dir(into, other, child, copied);
            } else {
                let id = *copied.entry(child).or_insert_with(|| {
                    self.nodes.push(other.nodes[child].clone());
                    self.nodes.len() - 1
                });
                self.set_entry(dir, name, id);
            }
        }
    }

    /// A fresh empty directory named `name` in `dir` (replacing what was
    /// there), 0755 at the build time; a merge then sets its metadata.
    pub(super) fn new_dir_entry(&mut self, dir: NodeId, name: &[u8]) -> NodeId {
        let id = self.nodes.len();
        self.nodes.push(Node::new(
            NodeKind::Dir {
                entries: BTreeMap::new(),
            },
            0o755,
            self.time,
        ));
        self.set_entry(dir, name, id);
        id
    }

    /// The directory the symlink `link` (an entry of `dir`) leads to inside
    /// the tree, if it leads to one.
    fn link_to_dir(&mut self, dir: NodeId, link: NodeId) -> Option<NodeId> {
        let NodeKind::Symlink { target } = &self.nodes[link].kind else {
            return None;
        };
        let target = std::str::from_utf8(target).ok()?;
        let path = if target.starts_with('/') {
            target.to_string()
        } else {
            format!("{}/{target}", self.path_of_dir(dir)?)
        };
        let found = self.resolve(&path, true, false).ok()??;
        self.nodes[found].is_dir().then_some(found)
    }

    /// The path of directory `dir` (`""` for the root), if it is UTF-8
    /// (what [`Tree::resolve`] takes).
    fn path_of_dir(&self, dir: NodeId) -> Option<String> {
        if dir == ROOT {
            return Some(String::new());
        }
        let (path, _) = self.walk().into_iter().find(|&(_, id)| id == dir)?;
        String::from_utf8(path).ok()
    }

    /// Removes every entry matching one of `patterns` (absolute globs; a
    /// trailing `/` removes what the directory holds and keeps it) and
    /// returns, per pattern, whether it matched: for `dir/`, whether a
    /// directory matched.
    pub fn exclude(&mut self, patterns: &[&str]) -> Vec<bool> {
        let mut used = vec![false; patterns.len()];
        let mut stack = vec![(Vec::new(), ROOT)];
        while let Some((path, dir)) = stack.pop() {
            let NodeKind::Dir { entries } = &self.nodes[dir].kind else {
                continue;
            };
            let mut dropped = Vec::new();
            let mut contents_gone = false;
            for (i, p) in patterns.iter().enumerate() {
                if let Some(base) = p.strip_suffix('/') {
                    let here: &[u8] = if path.is_empty() { b"/" } else { &path };
                    if glob_match(base.as_bytes(), here) {
                        used[i] = true;
                        contents_gone = true;
                    }
                }
            }
            for (name, &child) in entries {
                let mut full = path.clone();
                full.push(b'/');
                full.extend_from_slice(name);
                let mut hit = false;
                for (i, p) in patterns.iter().enumerate() {
                    if !p.ends_with('/') && glob_match(p.as_bytes(), &full) {
                        used[i] = true;
                        hit = true;
                    }
                }
                if hit || contents_gone {
                    dropped.push(name.clone());
                } else if self.nodes[child].is_dir() {
                    stack.push((full, child));
                }
            }
            if let NodeKind::Dir { entries } = &mut self.nodes[dir].kind {
                for name in dropped {
                    entries.remove(&name);
                }
            }
        }
        self.compact();
        used
    }

    /// Drops the nodes the root no longer reaches, keeping the order of
    /// the others (so ids, and what writers derive from them, stay stable).
    fn compact(&mut self) {
        let mut reached = vec![false; self.nodes.len()];
        reached[ROOT] = true;
        let mut stack = vec![ROOT];
        while let Some(id) = stack.pop() {
            if let NodeKind::Dir { entries } = &self.nodes[id].kind {
                for &c in entries.values() {
                    if !reached[c] {
                        reached[c] = true;
                        stack.push(c);
                    }
                }
            }
        }
        if reached.iter().all(|&r| r) {
            return;
        }
        let mut new_id = vec![usize::MAX; self.nodes.len()];
        let mut next = 0;
        for (old, &r) in reached.iter().enumerate() {
            if r {
                new_id[old] = next;
                next += 1;
            }
        }
        let nodes = std::mem::take(&mut self.nodes);
        self.nodes = nodes
            .into_iter()
            .zip(&reached)
            .filter(|(_, &r)| r)
            .map(|(mut node, _)| {
                if let NodeKind::Dir { entries } = &mut node.kind {
                    for c in entries.values_mut() {
                        *c = new_id[*c];
                    }
                }
                node
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Seed;

    fn ctx() -> BuildContext {
        BuildContext {
            seed: Seed("t".into()),
            source_date_epoch: Some(1_000_000),
        }
    }

    fn file(text: &str, mode: u32) -> Node {
        Node::new(
            NodeKind::File {
                source: FileSource::Bytes(Arc::new(text.as_bytes().to_vec())),
                size: text.len() as u64,
            },
            mode,
            Timestamp::default(),
        )
    }

    fn content(t: &Tree, path: &str) -> Option<String> {
        let id = t.lookup(path).unwrap()?;
        Some(String::from_utf8(t.read_file(id).ok()?.to_vec()).unwrap())
    }

    /// Every path of the tree with a letter for its kind.
    fn listing(t: &Tree) -> Vec<String> {
        t.walk()
            .into_iter()
            .map(|(p, id)| {
                let kind = match t.node(id).kind {
                    NodeKind::Dir { .. } => 'd',
                    NodeKind::File { .. } => 'f',
                    NodeKind::Symlink { .. } => 'l',
                    _ => 'o',
                };
                format!("{kind} {}", String::from_utf8_lossy(&p))
            })
            .collect()
    }

    #[test]
    fn exclude_drops_subtrees_and_keeps_the_other_names_of_hard_links() {
        let mut t = Tree::empty(&ctx());
        t.mkdir_all("/boot/x").unwrap();
        t.mkdir_all("/var/cache/apt").unwrap();
        t.mkdir_all("/usr/bin").unwrap();
        let f = t.insert("/boot/x/Image", file("k", 0o644)).unwrap();
        t.link("/usr/bin/same", f).unwrap();
        t.insert("/var/cache/apt/pkg", file("p", 0o644)).unwrap();
        t.insert("/var/cache/.keep", file("", 0o644)).unwrap();
        t.insert("/usr/bin/tool", file("t", 0o755)).unwrap();
        let before = t.len();
        let used = t.exclude(&["/boot", "/var/cache/**", "/usr/*/nothing", "/tmp/"]);
        assert_eq!(used, [true, true, false, false]);
        assert_eq!(
            listing(&t),
            [
                "d /usr",
                "d /usr/bin",
                "f /usr/bin/same",
                "f /usr/bin/tool",
                "d /var",
                "d /var/cache"
            ]
        );
        // boot, boot/x, cache/apt, pkg and .keep are gone from the nodes
        // too; the hard-linked file stays, now with one name.
        assert_eq!(t.len(), before - 5);
        let same = t.lookup("/usr/bin/same").unwrap().unwrap();
        assert_eq!(t.link_counts()[same], 1);
        assert_eq!(content(&t, "/usr/bin/same").as_deref(), Some("k"));
    }

    #[test]
    fn a_trailing_slash_empties_the_directory() {
        let mut t = Tree::empty(&ctx());
        t.mkdir_all("/tmp/a").unwrap();
        t.mkdir_all("/run").unwrap();
        t.insert("/tmp/f", file("f", 0o644)).unwrap();
        assert_eq!(
            t.exclude(&["/tmp/", "/run/", "/[tr]*/"]),
            [true, true, true]
        );
        assert_eq!(listing(&t), ["d /run", "d /tmp"]);
        // A file is no directory to empty.
        t.insert("/f", file("f", 0o644)).unwrap();
        assert_eq!(t.exclude(&["/f/"]), [false]);
    }

    #[test]
    fn merge_overrides_entry_by_entry() {
        let mut base = Tree::empty(&ctx());
        base.mkdir_all("/etc/init.d").unwrap();
        base.mkdir_all("/usr/bin").unwrap();
        base.mkdir_all("/opt/old/deep").unwrap();
        base.insert("/etc/hostname", file("base", 0o644)).unwrap();
        base.insert("/etc/keep", file("keep", 0o644)).unwrap();
        let linked = base.insert("/usr/bin/a", file("a", 0o755)).unwrap();
        base.link("/usr/bin/b", linked).unwrap();
        base.insert(
            "/bin",
            Node::new(
                NodeKind::Symlink {
                    target: b"usr/bin".to_vec(),
                },
                0o777,
                Timestamp::default(),
            ),
        )
        .unwrap();
        base.insert("/opt/old/deep/f", file("gone", 0o644)).unwrap();
        base.insert("/data", file("was a file", 0o644)).unwrap();

        let mut over = Tree::empty(&ctx());
        over.mkdir_all("/etc").unwrap();
        over.mkdir_all("/bin").unwrap();
        over.mkdir_all("/data/sub").unwrap();
        over.insert("/etc/hostname", file("board", 0o600)).unwrap();
        over.insert("/bin/extra", file("x", 0o755)).unwrap();
        over.mkdir_all("/usr/bin").unwrap();
        over.insert("/usr/bin/b", file("new b", 0o755)).unwrap();
        over.insert("/opt", file("opt is a file now", 0o644))
            .unwrap();
        let pair = over.insert("/data/sub/one", file("1", 0o644)).unwrap();
        over.link("/data/two", pair).unwrap();
        let etc = over.lookup("/etc").unwrap().unwrap();
        over.node_mut(etc).mode = 0o750;
        over.node_mut(etc).uid = 7;

        base.merge(ROOT, &over).unwrap();
        assert_eq!(content(&base, "/etc/hostname").as_deref(), Some("board"));
        assert_eq!(content(&base, "/etc/keep").as_deref(), Some("keep"));
        let etc = base.lookup("/etc").unwrap().unwrap();
        assert_eq!((base.node(etc).mode, base.node(etc).uid), (0o750, 7));
        assert!(base.lookup("/etc/init.d").unwrap().is_some());
        // The overlay's /bin went through the merged-/usr link.
        assert!(matches!(
            base.node(base.lookup("/bin").unwrap().unwrap()).kind,
            NodeKind::Symlink { .. }
        ));
        assert_eq!(content(&base, "/usr/bin/extra").as_deref(), Some("x"));
        // A file replaced a directory with its subtree, and the reverse.
        assert_eq!(content(&base, "/opt").as_deref(), Some("opt is a file now"));
        assert!(base.lookup("/data/sub/one").unwrap().is_some());
        // Hard links of the overlay stay one inode.
        let one = base.lookup("/data/sub/one").unwrap().unwrap();
        assert_eq!(base.lookup("/data/two").unwrap(), Some(one));
        assert_eq!(base.link_counts()[one], 2);
        // Replacing one name of a hard link leaves the other as it was.
        assert_eq!(content(&base, "/usr/bin/b").as_deref(), Some("new b"));
        assert_eq!(content(&base, "/usr/bin/a").as_deref(), Some("a"));
        let a = base.lookup("/usr/bin/a").unwrap().unwrap();
        assert_eq!(base.link_counts()[a], 1);
        // An absolute link below the root restarts at the tree's root.
        let mut abs = Tree::empty(&ctx());
        abs.mkdir_all("/usr/lib/fw").unwrap();
        abs.mkdir_all("/lib").unwrap();
        abs.insert(
            "/lib/firmware",
            Node::new(
                NodeKind::Symlink {
                    target: b"/usr/lib/fw".to_vec(),
                },
                0o777,
                Timestamp::default(),
            ),
        )
        .unwrap();
        let mut fw = Tree::empty(&ctx());
        fw.mkdir_all("/lib/firmware").unwrap();
        fw.insert("/lib/firmware/blob", file("b", 0o644)).unwrap();
        abs.merge(ROOT, &fw).unwrap();
        assert_eq!(content(&abs, "/usr/lib/fw/blob").as_deref(), Some("b"));
        // A tree grafted at a path: parents made, a file there replaced.
        let mut app = Tree::empty(&ctx());
        app.insert("/run.sh", file("run", 0o755)).unwrap();
        base.graft("/srv/app", &app).unwrap();
        base.graft("/etc/keep", &app).unwrap();
        assert_eq!(content(&base, "/srv/app/run.sh").as_deref(), Some("run"));
        assert_eq!(content(&base, "/etc/keep/run.sh").as_deref(), Some("run"));
        // Nothing unreachable is left.
        let reached: std::collections::BTreeSet<NodeId> =
            base.walk().into_iter().map(|(_, id)| id).collect();
        assert_eq!(base.len(), reached.len() + 1);
    }
}
