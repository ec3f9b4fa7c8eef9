//! The manifest: what a bundle holds and how to check it, as UTF-8
//! `key=value` lines in one fixed order (every key exactly once, `chunk`
//! once per payload chunk), so that one text has one meaning and the same
//! inputs give the same bytes:
//!
//! ```text
//! format=1
//! image=qemu-ab                 the description's image name
//! version=1.2.0                 --version or update.version
//! compatible=qemu-x86_64-ab     must equal the device's compatible string
//! slot=partition                or `file` (the OS-image-file variant), then
//! slot-file=rootfs-1.2.0.img    (file only) the image file's name
//! slot-size=268435456           bytes of slot contents (decompressed)
//! slot-sha256=<64 hex>
//! verity-roothash=<64 hex>     (optional) dm-verity root hash of the slot contents,
//! verity-hash-offset=50331648  (with it) byte offset of the hash tree's superblock
//! base-version=1.1.0           (delta only) the release the delta applies to,
//! base-size=268435456          (delta only) bytes of that release's slot contents
//! base-sha256=<64 hex>         (delta only) their SHA-256: the exact base
//! compression=zstd
//! payload-size=1234567          bytes of compressed payload
//! chunk-size=1048576            a power of two, MIN_CHUNK_BYTES..=MAX_CHUNK_BYTES
//! chunk=<64 hex>                SHA-256 of each chunk-size piece of the payload, in order
//! ```
//!
//! Parsing checks every value (names of 1..=128 safe characters, decimal
//! numbers without leading zeros, hex of the right length, the chunk count
//! that the payload size implies) and reports the first wrong line by
//! number; it never panics on any input (see the proptest in tests/).
//!
//! The `verity-*` lines (a slot whose partition has `verity: true`) are
//! optional, so a manifest written before they existed parses unchanged;
//! the installer stores the signed manifest for the slot and the boot
//! opens the slot with these values (layers/ab-slots/README.md). A reader
//! older than them refuses a manifest that has them (strict order), which
//! is right: it could not give the slot its new root hash.

use crate::Error;

/// Smallest chunk: keeps the chunk list short.
pub const MIN_CHUNK_BYTES: u32 = 64 * 1024;
/// Largest chunk: the device holds one chunk in memory (≤ 32 MiB in all).
pub const MAX_CHUNK_BYTES: u32 = 8 * 1024 * 1024;
/// The dm-verity hash block: the hash area starts on one.
const VERITY_BLOCK_BYTES: u64 = 4096;
/// Longest name-like value (image, version, compatible, slot file).
const MAX_NAME_BYTES: usize = 128;

/// What fills a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotKind {
    /// The bytes of the slot's partition (`ab-slots`).
    Partition,
    /// An image file on the OS-image partition, named in `versions.conf`
    /// (`ab-slots-images`); `name` is the file name the bundle suggests.
    File { name: String },
}

/// The slot contents a delta bundle applies to (delta.rs): the running
/// slot's first `size` bytes must hash to `sha256`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Base {
    pub version: String,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// The dm-verity values of the slot contents (`verity: true`): what the
/// boot needs besides the contents to open them (salt, block sizes and
/// data blocks are in the veritysetup superblock at `hash_offset`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verity {
    pub root_hash: [u8; 32],
    /// Byte offset of the hash area (its superblock) in the slot contents:
    /// a multiple of 4096, its block inside `slot-size`.
    pub hash_offset: u64,
}

/// The parsed manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub image: String,
    pub version: String,
    pub compatible: String,
    pub slot: SlotKind,
    pub slot_size: u64,
    pub slot_sha256: [u8; 32],
    /// Some when the slot contents carry a dm-verity hash tree.
    pub verity: Option<Verity>,
    /// Some for a delta bundle: its payload is a delta against this base.
    pub base: Option<Base>,
    pub payload_size: u64,
    pub chunk_size: u32,
    /// SHA-256 of each `chunk_size` piece of the payload (the last one shorter).
    pub chunks: Vec<[u8; 32]>,
}

impl Manifest {
    /// The manifest text (the signed bytes).
    pub fn encode(&self) -> String {
        let mut t = format!(
            "format={}\nimage={}\nversion={}\ncompatible={}\n",
            crate::FORMAT_VERSION,
            self.image,
            self.version,
            self.compatible
        );
        match &self.slot {
            SlotKind::Partition => t.push_str("slot=partition\n"),
            SlotKind::File { name } => t.push_str(&format!("slot=file\nslot-file={name}\n")),
        }
        t.push_str(&format!(
            "slot-size={}\nslot-sha256={}\n",
            self.slot_size,
            hex(&self.slot_sha256)
        ));
        if let Some(v) = &self.verity {
            t.push_str(&format!(
                "verity-roothash={}\nverity-hash-offset={}\n",
                hex(&v.root_hash),
                v.hash_offset
            ));
        }
        if let Some(base) = &self.base {
            t.push_str(&format!(
                "base-version={}\nbase-size={}\nbase-sha256={}\n",
                base.version,
                base.size,
                hex(&base.sha256)
            ));
        }
        t.push_str(&format!(
            "compression=zstd\npayload-size={}\nchunk-size={}\n",
            self.payload_size, self.chunk_size
        ));
        for c in &self.chunks {
            t.push_str(&format!("chunk={}\n", hex(c)));
        }
        t
    }

    /// Checks what `encode` cannot express wrongly but a caller can:
    /// names, the chunk size and the chunk count.
    pub fn check(&self) -> Result<(), Error> {
        self.encode().parse::<Manifest>().map(|_| ())
    }

    /// The number of chunks `payload_size` bytes make in `chunk_size` pieces.
    pub fn chunk_count(payload_size: u64, chunk_size: u32) -> u64 {
        payload_size.div_ceil(u64::from(chunk_size))
    }
}

impl std::str::FromStr for Manifest {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let mut lines = Lines {
            iter: text.split_terminator('\n').enumerate().peekable(),
            last: 0,
        };
        if !text.ends_with('\n') {
            return Err(Error::Manifest(
                text.lines().count().max(1),
                "the manifest does not end with a newline".into(),
            ));
        }
        let format = lines.number("format")?;
        if format != u64::from(crate::FORMAT_VERSION) {
            return Err(lines.err(format!(
                "format {format} is not the header's {}",
                crate::FORMAT_VERSION
            )));
        }
        let image = lines.name("image")?;
        let version = lines.name("version")?;
        let compatible = lines.name("compatible")?;
        let slot = match lines.value("slot")? {
            "partition" => SlotKind::Partition,
            "file" => {
                let name = lines.name("slot-file")?;
                if name.starts_with('.') {
                    return Err(lines.err(format!("slot-file \"{name}\" starts with '.'")));
                }
                SlotKind::File { name }
            }
            other => {
                return Err(lines.err(format!(
                    "slot \"{}\" is neither `partition` nor `file`",
                    shorten(other)
                )))
            }
        };
        let slot_size = lines.number("slot-size")?;
        let slot_sha256 = lines.hash("slot-sha256")?;
        let verity = if lines.next_is("verity-roothash") {
            let root_hash = lines.hash("verity-roothash")?;
            let hash_offset = lines.number("verity-hash-offset")?;
            if hash_offset % VERITY_BLOCK_BYTES != 0
                || hash_offset
                    .checked_add(VERITY_BLOCK_BYTES)
                    .is_none_or(|end| end > slot_size)
            {
                return Err(lines.err(format!(
                    "verity-hash-offset {hash_offset} is not a multiple of {VERITY_BLOCK_BYTES} \
                     with its block inside slot-size {slot_size}"
                )));
            }
            Some(Verity {
                root_hash,
                hash_offset,
            })
        } else {
            None
        };
        let base = if lines.next_is("base-version") {
            Some(Base {
                version: lines.name("base-version")?,
                size: lines.number("base-size")?,
                sha256: lines.hash("base-sha256")?,
            })
        } else {
            None
        };
        match lines.value("compression")? {
            "zstd" => {}
            other => {
                return Err(lines.err(format!(
                    "compression \"{}\" is unknown; this reader knows zstd",
                    shorten(other)
                )))
            }
        }
        let payload_size = lines.number("payload-size")?;
        if payload_size == 0 {
            return Err(lines.err("payload-size is 0".into()));
        }
        let chunk_size = lines.number("chunk-size")?;
        let chunk_size = u32::try_from(chunk_size)
            .ok()
            .filter(|c| {
                c.is_power_of_two() && (MIN_CHUNK_BYTES..=MAX_CHUNK_BYTES).contains(c)
            })
            .ok_or_else(|| {
                lines.err(format!(
                    "chunk-size {chunk_size} is not a power of two from {MIN_CHUNK_BYTES} to {MAX_CHUNK_BYTES}"
                ))
            })?;
        let count = Manifest::chunk_count(payload_size, chunk_size);
        let mut chunks = Vec::new();
        for _ in 0..count {
            chunks.push(lines.hash("chunk")?);
        }
        if let Some((n, _)) = lines.iter.next() {
            return Err(Error::Manifest(
                n + 1,
                format!(
                    "more lines than the {count} chunk hashes payload-size {payload_size} implies"
                ),
            ));
        }
        Ok(Manifest {
            image,
            version,
            compatible,
            slot,
            slot_size,
            slot_sha256,
            verity,
            base,
            payload_size,
            chunk_size,
            chunks,
        })
    }
}

/// The manifest's lines with their numbers, read key by key.
struct Lines<'a> {
    iter: std::iter::Peekable<std::iter::Enumerate<std::str::SplitTerminator<'a, char>>>,
    /// 1-based number of the line read last.
    last: usize,
}

impl<'a> Lines<'a> {
    fn err(&self, what: String) -> Error {
        Error::Manifest(self.last.max(1), what)
    }

    /// Whether the next line sets `key` (an optional group of lines).
    fn next_is(&mut self, key: &str) -> bool {
        self.iter
            .peek()
            .and_then(|(_, l)| l.split_once('='))
            .is_some_and(|(k, _)| k == key)
    }

    fn value(&mut self, key: &str) -> Result<&'a str, Error> {
        let Some((n, line)) = self.iter.next() else {
            return Err(Error::Manifest(
                self.last + 1,
                format!("the manifest ends before `{key}=`"),
            ));
        };
        self.last = n + 1;
        match line.split_once('=') {
            Some((k, v)) if k == key => Ok(v),
            _ => Err(self.err(format!("expected `{key}=`, found \"{}\"", shorten(line)))),
        }
    }

    fn name(&mut self, key: &str) -> Result<String, Error> {
        let v = self.value(key)?;
        let ok = !v.is_empty()
            && v.len() <= MAX_NAME_BYTES
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'));
        if ok {
            Ok(v.to_string())
        } else {
            Err(self.err(format!(
                "{key} \"{}\" is not 1 to {MAX_NAME_BYTES} of A-Z a-z 0-9 . _ - +",
                shorten(v)
            )))
        }
    }

    fn number(&mut self, key: &str) -> Result<u64, Error> {
        let v = self.value(key)?;
        let canonical = v == "0" || (!v.starts_with('0') && v.bytes().all(|b| b.is_ascii_digit()));
        match v.parse::<u64>() {
            Ok(n) if canonical => Ok(n),
            _ => Err(self.err(format!(
                "{key} \"{}\" is not a decimal number below 2^64",
                shorten(v)
            ))),
        }
    }

    fn hash(&mut self, key: &str) -> Result<[u8; 32], Error> {
        let v = self.value(key)?;
        parse_hex32(v).ok_or_else(|| {
            self.err(format!(
                "{key} \"{}\" is not 64 lowercase hex digits",
                shorten(v)
            ))
        })
    }
}

/// At most 40 characters of `s`, for messages about hostile input.
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The 32 bytes of 64 lowercase hex digits; None for anything else.
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        *o = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            image: "qemu-ab".into(),
            version: "1.2.0".into(),
            compatible: "qemu-x86_64-ab".into(),
            slot: SlotKind::File {
                name: "rootfs-1.2.0.img".into(),
            },
            slot_size: 4096,
            slot_sha256: [7; 32],
            verity: None,
            base: None,
            payload_size: 70_000,
            chunk_size: MIN_CHUNK_BYTES,
            chunks: vec![[1; 32], [2; 32]],
        }
    }

    #[test]
    fn round_trips() {
        let m = sample();
        assert_eq!(m.encode().parse::<Manifest>(), Ok(m.clone()));
        let p = Manifest {
            slot: SlotKind::Partition,
            ..m
        };
        assert_eq!(p.encode().parse::<Manifest>(), Ok(p.clone()));
        let d = Manifest {
            base: Some(Base {
                version: "1.1.0".into(),
                size: 8192,
                sha256: [9; 32],
            }),
            ..p
        };
        let text = d.encode();
        assert!(text.contains("base-version=1.1.0\nbase-size=8192\nbase-sha256=0909"));
        assert_eq!(text.parse::<Manifest>(), Ok(d));
    }

    #[test]
    fn a_delta_base_is_complete_or_refused() {
        let d = Manifest {
            base: Some(Base {
                version: "1.1.0".into(),
                size: 8192,
                sha256: [9; 32],
            }),
            ..sample()
        };
        let text = d.encode();
        let cases = [
            ("base-size=8192\n", "", 10, "expected `base-size=`"),
            (
                "base-size=8192",
                "base-size=x",
                10,
                "base-size \"x\" is not",
            ),
            ("base-sha256=0909", "base-sha256=zz09", 11, "base-sha256"),
            ("base-version=1.1.0", "base-version=a b", 9, "base-version"),
        ];
        for (from, to, line, what) in cases {
            match text.replacen(from, to, 1).parse::<Manifest>() {
                Err(Error::Manifest(n, m)) => {
                    assert_eq!(n, line, "{to}: {m}");
                    assert!(m.contains(what), "{to}: {m}");
                }
                other => panic!("{to}: {other:?}"),
            }
        }
    }

    fn with_verity() -> Manifest {
        Manifest {
            slot: SlotKind::Partition,
            slot_size: 3 * 4096,
            verity: Some(Verity {
                root_hash: [0xab; 32],
                hash_offset: 2 * 4096,
            }),
            ..sample()
        }
    }

    #[test]
    fn verity_values_round_trip_and_are_optional() {
        let v = with_verity();
        let text = v.encode();
        assert!(text.contains(&format!(
            "slot-sha256={}\nverity-roothash={}\nverity-hash-offset=8192\ncompression=",
            hex(&[7; 32]),
            hex(&[0xab; 32])
        )));
        assert_eq!(text.parse::<Manifest>(), Ok(v.clone()));
        let d = Manifest {
            base: Some(Base {
                version: "1.1.0".into(),
                size: 8192,
                sha256: [9; 32],
            }),
            ..v
        };
        assert_eq!(d.encode().parse::<Manifest>(), Ok(d));
        // A manifest written before the verity lines existed.
        let old = format!(
            "format=1\nimage=qemu-ab\nversion=1.1.0\ncompatible=qemu-x86_64-ab\nslot=partition\n\
             slot-size=4096\nslot-sha256={}\ncompression=zstd\npayload-size=100\n\
             chunk-size=65536\nchunk={}\n",
            hex(&[7; 32]),
            hex(&[1; 32])
        );
        let m = old.parse::<Manifest>().unwrap();
        assert_eq!(m.verity, None);
        assert_eq!(m.encode(), old);
    }

    #[test]
    fn malformed_verity_values_are_refused() {
        let text = with_verity().encode();
        let root = format!("verity-roothash={}\n", hex(&[0xab; 32]));
        let cases = [
            (
                root.clone(),
                format!("verity-roothash={}\n", "AB".repeat(32)),
                8,
                "verity-roothash \"ABAB",
            ),
            (
                root.clone(),
                "verity-roothash=ab\n".into(),
                8,
                "not 64 lowercase hex",
            ),
            (
                "verity-hash-offset=8192\n".into(),
                String::new(),
                9,
                "expected `verity-hash-offset=`",
            ),
            (
                "verity-hash-offset=8192".into(),
                "verity-hash-offset=08192".into(),
                9,
                "not a decimal number",
            ),
            (
                "verity-hash-offset=8192".into(),
                "verity-hash-offset=8193".into(),
                9,
                "not a multiple of 4096",
            ),
            (
                "verity-hash-offset=8192".into(),
                "verity-hash-offset=12288".into(),
                9,
                "inside slot-size 12288",
            ),
            (
                "verity-hash-offset=8192".into(),
                "verity-hash-offset=18446744073709551615".into(),
                9,
                "inside slot-size",
            ),
            // The offset alone, or the two lines swapped.
            (root.clone(), String::new(), 8, "expected `compression=`"),
            (
                format!("{root}verity-hash-offset=8192\n"),
                format!("verity-hash-offset=8192\n{root}"),
                8,
                "expected `compression=`",
            ),
        ];
        for (from, to, line, what) in cases {
            let bad = text.replacen(&from, &to, 1);
            assert_ne!(bad, text, "{from} not in the manifest");
            match bad.parse::<Manifest>() {
                Err(Error::Manifest(n, m)) => {
                    assert_eq!(n, line, "{to}: {m}");
                    assert!(m.contains(what), "{to}: {m}");
                }
                other => panic!("{to}: {other:?}"),
            }
        }
    }

    fn refused(from: &str, to: &str) -> Error {
        let text = sample().encode().replacen(from, to, 1);
        assert_ne!(text, sample().encode(), "{from} not in the sample");
        text.parse::<Manifest>().unwrap_err()
    }

    #[test]
    fn names_the_wrong_line() {
        let cases = [
            ("format=1", "format=2", 1, "format 2 is not the header's 1"),
            ("image=qemu-ab", "image=a/b", 2, "image \"a/b\" is not"),
            ("version=1.2.0", "version=", 3, "version \"\" is not"),
            (
                "slot=file",
                "slot=disk",
                5,
                "neither `partition` nor `file`",
            ),
            (
                "slot-file=rootfs-1.2.0.img",
                "slot-file=..",
                6,
                "starts with '.'",
            ),
            (
                "slot-size=4096",
                "slot-size=04096",
                7,
                "not a decimal number",
            ),
            (
                "slot-size=4096",
                "slot-size=99999999999999999999",
                7,
                "below 2^64",
            ),
            (
                "compression=zstd",
                "compression=xz",
                9,
                "compression \"xz\" is unknown",
            ),
            (
                "payload-size=70000",
                "payload-size=0",
                10,
                "payload-size is 0",
            ),
            (
                "chunk-size=65536",
                "chunk-size=65537",
                11,
                "not a power of two",
            ),
            (
                "chunk-size=65536",
                "chunk-size=16777216",
                11,
                "not a power of two",
            ),
            (
                "payload-size=70000",
                "payload-size=7000",
                13,
                "more lines than the 1 chunk",
            ),
            (
                "payload-size=70000",
                "payload-size=700000",
                14,
                "ends before `chunk=`",
            ),
            ("compatible=", "compat=", 4, "expected `compatible=`"),
        ];
        for (from, to, line, text) in cases {
            match refused(from, to) {
                Error::Manifest(n, what) => {
                    assert_eq!(n, line, "{to}: {what}");
                    assert!(what.contains(text), "{to}: {what}");
                }
                other => panic!("{to}: {other:?}"),
            }
        }
        let long = format!("image={}", "x".repeat(MAX_NAME_BYTES + 1));
        assert!(matches!(
            refused("image=qemu-ab", &long),
            Error::Manifest(2, _)
        ));
        let upper = format!("chunk={}", hex(&[0xab; 32]).to_uppercase());
        assert!(matches!(
            refused(&format!("chunk={}", hex(&[1; 32])), &upper),
            Error::Manifest(12, _)
        ));
        let mut unterminated = sample().encode();
        unterminated.pop();
        assert!(unterminated.parse::<Manifest>().is_err());
    }
}
