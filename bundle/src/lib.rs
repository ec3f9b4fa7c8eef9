//! The slot bundle format of image-composer, shared by the host tool
//! (`image-composer bundle`, `bundle-info`) and the device's installer
//! (`ab-install`). It knows bytes, hashes and keys — no YAML, no disks, no
//! files beyond the key files — so the installer that links it stays small
//! and cross-builds anywhere Rust does (every dependency is pure Rust).
//!
//! A bundle is one stream, readable front to back without seeking, so the
//! device can install from a pipe:
//!
//! ```text
//! offset  size  what
//!      0     8  magic "ICBUNDLE"
//!      8     4  format version, u32 little-endian (FORMAT_VERSION)
//!     12     4  manifest length M, u32 little-endian (at most MAX_MANIFEST_BYTES)
//!     16     M  manifest: UTF-8 `key=value` lines (manifest.rs)
//!   16+M    64  Ed25519 signature of bytes 0 .. 16+M
//!   80+M     P  payload: the slot contents as one zstd frame, P = payload-size
//!                (end of the bundle: nothing may follow)
//! ```
//!
//! The manifest lists the SHA-256 of every `chunk-size` bytes of the
//! *compressed* payload, so the reader checks each chunk before a single byte
//! of it reaches the decompressor or the disk, holding one chunk in memory
//! ([`PayloadReader`]); the manifest also carries the size and SHA-256 of
//! the decompressed slot contents, for the final read-back check.
//!
//! A delta bundle (delta.rs) has the same container; its manifest names
//! the base it applies to, and its decompressed payload is a list of ops
//! (copy from the base, zeros, literal bytes) instead of the slot contents.
//!
//! Rejected: a tar or cpio container (RAUC's squashfs, SWUpdate's cpio) —
//! both need a parser of a second format before the signature is checked;
//! JSON or CBOR for the manifest — a serde stack on the device for a dozen
//! fields; hashing the decompressed data per chunk — unverified bytes would
//! then reach the decompressor; a signature over the whole payload (one
//! hash at the end) — the device would write unverified data first.

mod container;
mod delta;
mod keys;
mod manifest;

pub use container::{
    delta_reader, read_signed, seal, slot_reader, walk_delta, PayloadReader, Signed, SlotReader,
    FORMAT_VERSION, HEADER_BYTES, MAGIC, MAX_MANIFEST_BYTES, SIGNATURE_BYTES,
};
pub use delta::{check_base, DeltaStats, DeltaWriter, Patch};
pub use keys::{
    decode_public_key, decode_secret_key, encode_public_key, encode_secret_key, key_from_seed,
    SigningKey, VerifyingKey,
};
pub use manifest::{
    hex, parse_hex32, Base, Manifest, SlotKind, Verity, MAX_CHUNK_BYTES, MIN_CHUNK_BYTES,
};

/// Why a bundle (or a key) was refused. Every message is one line that says
/// what is wrong; the installer prints it after "refused: ".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The stream ended inside the named part.
    Truncated(&'static str),
    BadMagic,
    UnknownFormat(u32),
    ManifestTooLarge(u64),
    /// No listed key verifies the signature.
    BadSignature,
    /// A manifest line is wrong: its 1-based number and what is wrong.
    Manifest(usize, String),
    /// The payload chunk with this 0-based index does not match its hash.
    ChunkHash(u64),
    /// Bytes follow the payload.
    TrailingData,
    /// The decompressed slot contents disagree with the manifest.
    SlotContents(String),
    /// A delta's ops are malformed.
    Delta(String),
    /// The running slot is not the base a delta applies to.
    WrongBase(String),
    Key(String),
    Io(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Truncated(what) => write!(f, "the bundle ends inside its {what} (truncated?)"),
            Error::BadMagic => write!(f, "not an image-composer bundle (no ICBUNDLE magic)"),
            Error::UnknownFormat(v) => write!(
                f,
                "bundle format version {v} is unknown; this reader knows version {FORMAT_VERSION}"
            ),
            Error::ManifestTooLarge(n) => write!(
                f,
                "the manifest claims {n} bytes, more than the limit of {MAX_MANIFEST_BYTES}"
            ),
            Error::BadSignature => {
                write!(f, "the signature does not verify with any trusted key")
            }
            Error::Manifest(line, what) => write!(f, "manifest line {line}: {what}"),
            Error::ChunkHash(i) => {
                write!(
                    f,
                    "payload chunk {i} does not match its hash (corrupted or tampered)"
                )
            }
            Error::TrailingData => write!(f, "data follows the payload"),
            Error::SlotContents(what) => write!(f, "slot contents: {what}"),
            Error::Delta(what) => write!(f, "delta: {what}"),
            Error::WrongBase(what) => write!(f, "wrong base: {what}"),
            Error::Key(what) => write!(f, "{what}"),
            Error::Io(what) => write!(f, "{what}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

/// The bundle error inside an I/O error, when there is one (the payload
/// reader reports a bad chunk through `Read`); else the I/O error as text.
pub fn error_from_io(e: std::io::Error, reading: &'static str) -> Error {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
        return inner.clone();
    }
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        return Error::Truncated(reading);
    }
    Error::Io(format!("reading the {reading}: {e}"))
}
