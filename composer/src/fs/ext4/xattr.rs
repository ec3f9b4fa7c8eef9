//! Extended attributes: in the inode's spare space first, the rest in one
//! attribute block (`Documentation/filesystems/ext4/attributes.rst`).
//!
//! Names are stored as a prefix index plus suffix; POSIX ACLs are converted
//! from the `system.posix_acl_*` xattr format that `lgetxattr` returns to
//! ext4's compact `ext4_acl` format (`fs/ext4/acl.c`), as the kernel does on
//! `setxattr`. Entries in a block are sorted by (index, name length, name):
//! the kernel's lookup stops early in a sorted block.
//!
//! Rejected: sharing identical attribute blocks between inodes (refcount),
//! which saves space only for large identical sets beyond the inode space;
//! `ea_inode` values larger than a block.

use super::hash::{xattr_block_hash, xattr_entry_hash};
use super::ondisk::{XattrEntry, XattrHeader, XATTR_MAGIC};
use anyhow::{anyhow, bail};
use std::collections::BTreeMap;
use zerocopy::IntoBytes;

/// Bytes for attributes in a 256-byte inode after the 160 used ones.
pub const INLINE_SPACE: usize = 256 - 160;

/// Name prefixes by index, longest match first where they nest.
const PREFIXES: [(&[u8], u8); 6] = [
    (b"system.posix_acl_access", 2),
    (b"system.posix_acl_default", 3),
    (b"user.", 1),
    (b"trusted.", 4),
    (b"security.", 6),
    (b"system.", 7),
];

/// `POSIX_ACL_XATTR_VERSION` of the xattr (user space) format.
const POSIX_ACL_XATTR_VERSION: u32 = 2;
/// `EXT4_ACL_VERSION` of the on-disk format.
const EXT4_ACL_VERSION: u32 = 1;
/// ACL tags that carry an id (`ACL_USER`, `ACL_GROUP`).
const ACL_USER: u16 = 0x02;
const ACL_GROUP: u16 = 0x08;

/// One attribute ready to place.
struct Attr {
    index: u8,
    name: Vec<u8>,
    value: Vec<u8>,
    hash: u32,
}

impl Attr {
    fn entry_size(&self) -> usize {
        16 + self.name.len().next_multiple_of(4)
    }
    fn value_size(&self) -> usize {
        self.value.len().next_multiple_of(4)
    }
}

/// Where an inode's attributes go: the in-inode area (starting with the
/// magic) and, if needed, an attribute block without its checksum.
#[derive(Clone, Debug, Default)]
pub struct Placed {
    pub inline: Vec<u8>,
    pub block: Option<Vec<u8>>,
}

fn convert_acl(value: &[u8]) -> anyhow::Result<Vec<u8>> {
    let word = |i: usize| -> Option<u32> {
        value
            .get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if word(0) != Some(POSIX_ACL_XATTR_VERSION) || (value.len() - 4) % 8 != 0 {
        bail!("POSIX ACL value is not in the version 2 xattr format");
    }
    let mut out = EXT4_ACL_VERSION.to_le_bytes().to_vec();
    for e in value[4..].chunks(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        out.extend_from_slice(&e[0..4]);
        if tag == ACL_USER || tag == ACL_GROUP {
            out.extend_from_slice(&e[4..8]);
        }
    }
    Ok(out)
}

/// Places `xattrs` for a filesystem of `block_size`.
pub fn place(xattrs: &BTreeMap<Vec<u8>, Vec<u8>>, block_size: usize) -> anyhow::Result<Placed> {
    if xattrs.is_empty() {
        return Ok(Placed::default());
    }
    let mut attrs = Vec::new();
    for (full, value) in xattrs {
        let (prefix, index) = PREFIXES
            .iter()
            .find(|(p, _)| full.starts_with(p))
            .ok_or_else(|| {
                anyhow!(
                    "extended attribute '{}' has a namespace ext4 cannot store (user., trusted., security., system.)",
                    String::from_utf8_lossy(full)
                )
            })?;
        let name = full[prefix.len()..].to_vec();
        if name.len() > 255 {
            bail!(
                "extended attribute name '{}' is too long",
                String::from_utf8_lossy(full)
            );
        }
        let value = if *index == 2 || *index == 3 {
            convert_acl(value)?
        } else {
            value.clone()
        };
        let hash = xattr_entry_hash(&name, &value);
        attrs.push(Attr {
            index: *index,
            name,
            value,
            hash,
        });
    }
    attrs.sort_by(|a, b| (a.index, a.name.len(), &a.name).cmp(&(b.index, b.name.len(), &b.name)));
    // Inline first, greedily in sorted order; the 4-byte magic and the
    // 4-byte end marker come out of the inline space.
    let mut inline = Vec::new();
    let mut block = Vec::new();
    let mut used = 8;
    for a in attrs {
        let need = a.entry_size() + a.value_size();
        if used + need <= INLINE_SPACE {
            used += need;
            inline.push(a);
        } else {
            block.push(a);
        }
    }
    let mut placed = Placed::default();
    if !inline.is_empty() {
        let mut area = vec![0u8; INLINE_SPACE];
        area[..4].copy_from_slice(&XATTR_MAGIC.to_le_bytes());
        // Offsets in the inode count from the first entry (after the magic).
        fill(&mut area[4..], &inline, 0);
        placed.inline = area;
    }
    if !block.is_empty() {
        let need: usize = 32
            + 4
            + block
                .iter()
                .map(|a| a.entry_size() + a.value_size())
                .sum::<usize>();
        if need > block_size {
            bail!("extended attributes need {need} bytes, more than one {block_size}-byte block; use a larger block size ('block-size: 4096') or fewer or smaller attributes");
        }
        let mut b = vec![0u8; block_size];
        let hdr = XattrHeader {
            h_magic: XATTR_MAGIC.into(),
            h_refcount: 1.into(),
            h_blocks: 1.into(),
            h_hash: xattr_block_hash(&block.iter().map(|a| a.hash).collect::<Vec<_>>()).into(),
            ..Default::default()
        };
        b[..32].copy_from_slice(hdr.as_bytes());
        fill(&mut b, &block, 32);
        placed.block = Some(b);
    }
    Ok(placed)
}

/// Writes entries from `first` and values from the end of `area`; value
/// offsets are relative to the start of `area`.
fn fill(area: &mut [u8], attrs: &[Attr], first: usize) {
    let mut at = first;
    let mut end = area.len();
    for a in attrs {
        let offs = if a.value.is_empty() {
            0
        } else {
            end -= a.value_size();
            area[end..end + a.value.len()].copy_from_slice(&a.value);
            end
        };
        let e = XattrEntry {
            e_name_len: a.name.len() as u8,
            e_name_index: a.index,
            e_value_offs: (offs as u16).into(),
            e_value_inum: 0.into(),
            e_value_size: (a.value.len() as u32).into(),
            e_hash: a.hash.into(),
        };
        area[at..at + 16].copy_from_slice(e.as_bytes());
        area[at + 16..at + 16 + a.name.len()].copy_from_slice(&a.name);
        at += a.entry_size();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sets_stay_in_the_inode_and_large_ones_spill() {
        let mut x = BTreeMap::new();
        x.insert(b"user.a".to_vec(), b"1".to_vec());
        let p = place(&x, 4096).unwrap();
        assert_eq!(p.inline.len(), INLINE_SPACE);
        assert!(p.block.is_none());
        x.insert(b"user.big".to_vec(), vec![7; 200]);
        let p = place(&x, 4096).unwrap();
        assert!(p.block.is_some());
        x.insert(b"bogus.x".to_vec(), vec![]);
        assert!(place(&x, 4096).is_err());
    }

    #[test]
    fn acls_convert_to_the_short_ext4_form() {
        // version 2; USER_OBJ rwx; USER 1000 r; GROUP_OBJ r; MASK r; OTHER r.
        let mut v = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (1u16, 7u16, u32::MAX),
            (2, 4, 1000),
            (4, 4, u32::MAX),
            (0x10, 4, u32::MAX),
            (0x20, 4, u32::MAX),
        ] {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        let c = convert_acl(&v).unwrap();
        assert_eq!(c.len(), 4 + 4 + 8 + 4 + 4 + 4);
        assert_eq!(&c[8..16], &[2, 0, 4, 0, 0xe8, 3, 0, 0]);
    }
}
