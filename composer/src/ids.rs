//! Identifiers derived from a seed: disk GUIDs, partition UUIDs, filesystem
//! UUIDs, volume ids, MBR signatures, ext4 hash seeds.
//!
//! Same seed and same names give the same identifiers, so two builds of the
//! same description are bit-identical (systemd-repart's `--seed` idea). An ID
//! is SHA-256 over the seed and a purpose path (`["partition", "root-a",
//! "uuid"]`), each part length-prefixed so that no two paths collide, cut to
//! the size needed; UUIDs get the RFC 9562 version-4 and variant bits so that
//! tools treat them as ordinary random UUIDs. Rejected: `Uuid::new_v4()` (not
//! reproducible) and UUIDv5 (SHA-1, and a namespace UUID adds nothing here).

use sha2::{Digest, Sha256};
use std::fmt;

/// The seed every identifier of one image derives from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seed(pub String);

impl Seed {
    /// 32 bytes derived from the seed and `purpose`.
    pub fn derive(&self, purpose: &[&str]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"image-composer id v1\0");
        h.update((self.0.len() as u64).to_le_bytes());
        h.update(self.0.as_bytes());
        for part in purpose {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    }

    /// A version-4-shaped UUID derived from the seed and `purpose`.
    pub fn uuid(&self, purpose: &[&str]) -> Uuid {
        let d = self.derive(purpose);
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Uuid(b)
    }

    /// A 32-bit value (MBR disk signature, FAT volume id).
    pub fn u32(&self, purpose: &[&str]) -> u32 {
        let d = self.derive(purpose);
        u32::from_le_bytes([d[0], d[1], d[2], d[3]])
    }
}

/// A UUID in its textual (RFC 9562, big-endian) byte order.
///
/// GPT stores the first three fields little-endian: use [`Uuid::to_gpt_bytes`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (either case).
    pub fn parse(text: &str) -> Option<Uuid> {
        let text = text.trim();
        let groups: Vec<&str> = text.split('-').collect();
        if groups.len() != 5
            || groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12]
        {
            return None;
        }
        let hex: String = groups.concat();
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Uuid(out))
    }

    /// The mixed-endian byte order GPT and EFI use on disk.
    pub fn to_gpt_bytes(self) -> [u8; 16] {
        let b = self.0;
        [
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13],
            b[14], b[15],
        ]
    }

    pub fn is_nil(self) -> bool {
        self.0 == [0; 16]
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_purpose_give_the_same_uuid() {
        let s = Seed("board".into());
        assert_eq!(
            s.uuid(&["partition", "root-a"]),
            s.uuid(&["partition", "root-a"])
        );
        assert_ne!(
            s.uuid(&["partition", "root-a"]),
            s.uuid(&["partition", "root-b"])
        );
        // Length prefixes keep ["ab","c"] and ["a","bc"] apart.
        assert_ne!(s.uuid(&["ab", "c"]), s.uuid(&["a", "bc"]));
        let u = s.uuid(&["disk"]);
        assert_eq!(u.0[6] >> 4, 4);
        assert_eq!(u.0[8] >> 6, 0b10);
    }

    #[test]
    fn parses_and_prints_round_trip() {
        let text = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
        let u = Uuid::parse(text).unwrap();
        assert_eq!(u.to_string(), text);
        assert_eq!(
            u.to_gpt_bytes()[..4],
            [0x28, 0x73, 0x2a, 0xc1],
            "GPT stores the first field little-endian"
        );
        assert!(Uuid::parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93").is_none());
        assert!(Uuid::parse("g12a7328-f81f-11d2-ba4b-00a0c93ec93b").is_none());
    }
}
