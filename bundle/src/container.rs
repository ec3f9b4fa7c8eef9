//! The bundle stream: header, signed manifest, payload (layout in lib.rs).
//!
//! Reading goes in three steps that each refuse before the next one starts:
//! [`read_signed`] reads the header and the manifest within fixed bounds,
//! [`Signed::verify`] checks the signature before the manifest is parsed,
//! and [`PayloadReader`] / [`slot_reader`] hand out payload bytes only
//! after the chunk that holds them matched its hash, and end with the
//! size and SHA-256 of the decompressed slot contents.

use crate::delta::{DeltaStats, Patch};
use crate::manifest::Manifest;
use crate::{error_from_io, Error};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::io::Read;
use std::rc::Rc;

/// The first refusal of a payload reader, shared with the readers above it.
type Failure = Rc<RefCell<Option<Error>>>;

pub const MAGIC: [u8; 8] = *b"ICBUNDLE";
/// The one format this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Magic, format version, manifest length.
pub const HEADER_BYTES: usize = 16;
pub const SIGNATURE_BYTES: usize = 64;
/// 1 MiB: about 14 000 chunk hashes, 14 GiB of payload at 1 MiB chunks;
/// bounds what a reader allocates before the signature is checked.
pub const MAX_MANIFEST_BYTES: u32 = 1 << 20;

/// Header, manifest and signature: everything before the payload.
pub fn seal(manifest: &Manifest, key: &SigningKey) -> Result<Vec<u8>, Error> {
    manifest.check()?;
    let text = manifest.encode();
    let len = u32::try_from(text.len())
        .ok()
        .filter(|n| *n <= MAX_MANIFEST_BYTES)
        .ok_or(Error::ManifestTooLarge(text.len() as u64))?;
    let mut out = Vec::with_capacity(HEADER_BYTES + text.len() + SIGNATURE_BYTES);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    let signature = key.sign(&out);
    out.extend_from_slice(&signature.to_bytes());
    Ok(out)
}

/// A bundle's header and manifest as read, not yet trusted.
pub struct Signed {
    /// Header and manifest: the signed bytes.
    signed: Vec<u8>,
    signature: [u8; SIGNATURE_BYTES],
}

/// Reads the header, the manifest and the signature from the front of `r`.
pub fn read_signed(r: &mut impl Read) -> Result<Signed, Error> {
    let mut header = [0u8; HEADER_BYTES];
    r.read_exact(&mut header)
        .map_err(|e| error_from_io(e, "header"))?;
    if header[..8] != MAGIC {
        return Err(Error::BadMagic);
    }
    let word =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let format = word(8);
    if format != FORMAT_VERSION {
        return Err(Error::UnknownFormat(format));
    }
    let len = word(12);
    if len > MAX_MANIFEST_BYTES {
        return Err(Error::ManifestTooLarge(u64::from(len)));
    }
    let mut signed = header.to_vec();
    signed.resize(HEADER_BYTES + len as usize, 0);
    r.read_exact(&mut signed[HEADER_BYTES..])
        .map_err(|e| error_from_io(e, "manifest"))?;
    let mut signature = [0u8; SIGNATURE_BYTES];
    r.read_exact(&mut signature)
        .map_err(|e| error_from_io(e, "signature"))?;
    Ok(Signed { signed, signature })
}

impl Signed {
    /// The index of the first key in `keys` whose signature this is, and the
    /// parsed manifest; the manifest is not parsed unless one key verifies.
    pub fn verify(&self, keys: &[VerifyingKey]) -> Result<(usize, Manifest), Error> {
        let signature = Signature::from_bytes(&self.signature);
        let index = keys
            .iter()
            .position(|k| k.verify_strict(&self.signed, &signature).is_ok())
            .ok_or(Error::BadSignature)?;
        Ok((index, self.manifest_unverified()?))
    }

    /// The manifest without a signature check (for `bundle-info` without a key).
    pub fn manifest_unverified(&self) -> Result<Manifest, Error> {
        std::str::from_utf8(&self.signed[HEADER_BYTES..])
            .map_err(|e| Error::Manifest(0, format!("not UTF-8 at byte {}", e.valid_up_to())))?
            .parse()
    }

    /// Header, manifest and signature as read: what [`read_signed`] reads
    /// back (ab-install stores them for a slot, the boot checks them again).
    pub fn to_bytes(&self) -> Vec<u8> {
        [self.signed.as_slice(), &self.signature].concat()
    }

    /// The manifest text as signed (printed by `bundle-info`), lossily decoded.
    pub fn manifest_text(&self) -> String {
        String::from_utf8_lossy(&self.signed[HEADER_BYTES..]).into_owned()
    }
}

/// The payload, chunk by chunk: each chunk is read whole, hashed and
/// compared with the manifest before any of its bytes is returned. Holds
/// one chunk (≤ MAX_CHUNK_BYTES). Errors come as `io::Error`s carrying an
/// [`Error`] (see [`error_from_io`]).
pub struct PayloadReader<R> {
    inner: R,
    chunks: Vec<[u8; 32]>,
    chunk_size: u32,
    /// Payload bytes not yet read from `inner`.
    left: u64,
    next_chunk: usize,
    buf: Vec<u8>,
    pos: usize,
    /// The first refusal, kept for the caller: a decompressor between this
    /// reader and its caller wraps it into an error of its own.
    failure: Failure,
}

impl<R: Read> PayloadReader<R> {
    /// `inner` positioned right after the signature; `manifest` verified.
    pub fn new(inner: R, manifest: &Manifest) -> Self {
        PayloadReader {
            inner,
            chunks: manifest.chunks.clone(),
            chunk_size: manifest.chunk_size,
            left: manifest.payload_size,
            next_chunk: 0,
            buf: Vec::with_capacity(manifest.chunk_size as usize),
            pos: 0,
            failure: Rc::default(),
        }
    }

    /// Loads and checks the next chunk; false at the end of the payload,
    /// after making sure nothing follows it.
    fn fill(&mut self) -> Result<bool, Error> {
        let Some(expected) = self.chunks.get(self.next_chunk) else {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe) {
                Ok(0) => Ok(false),
                Ok(_) => Err(Error::TrailingData),
                Err(e) => Err(error_from_io(e, "payload")),
            };
        };
        let n = self.left.min(u64::from(self.chunk_size)) as usize;
        self.buf.resize(n, 0);
        self.inner
            .read_exact(&mut self.buf)
            .map_err(|e| error_from_io(e, "payload"))?;
        if Sha256::digest(&self.buf).as_slice() != expected {
            return Err(Error::ChunkHash(self.next_chunk as u64));
        }
        self.left -= n as u64;
        self.next_chunk += 1;
        self.pos = 0;
        Ok(true)
    }

    /// Reads to the end of the payload (checking every chunk) and makes sure
    /// nothing follows.
    pub fn finish(&mut self) -> Result<(), Error> {
        while self.fill()? {}
        Ok(())
    }
}

impl<R: Read> Read for PayloadReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            match self.fill() {
                Ok(true) => {}
                Ok(false) => return Ok(0),
                Err(e) => {
                    self.failure.borrow_mut().get_or_insert(e.clone());
                    return Err(e.into());
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

type Decoder<R> =
    ruzstd::decoding::StreamingDecoder<PayloadReader<R>, ruzstd::decoding::FrameDecoder>;

/// Where the slot contents come from: the decompressed payload itself, or
/// a delta's ops applied to the base.
enum Stream<R: Read> {
    Full(Decoder<R>),
    Delta(Patch<Decoder<R>>),
}

impl<R: Read> Stream<R> {
    fn payload(&mut self) -> &mut PayloadReader<R> {
        match self {
            Stream::Full(d) => d.get_mut(),
            Stream::Delta(p) => p.get_mut().get_mut(),
        }
    }
}

/// The slot contents of a verified bundle, as a reader: it fails as soon
/// as more than `slot_size` bytes come out, and at its end checks the
/// size, the SHA-256 and that the payload holds nothing more.
pub struct SlotReader<R: Read> {
    stream: Stream<R>,
    /// The payload reader's refusal, which the decoder's errors hide.
    failure: Failure,
    hasher: Sha256,
    size: u64,
    expected_size: u64,
    expected_sha256: [u8; 32],
}

/// Starts decompressing the payload of `manifest` from `inner`.
fn decoder<R: Read>(inner: R, manifest: &Manifest) -> Result<(Decoder<R>, Failure), Error> {
    let payload = PayloadReader::new(inner, manifest);
    let failure = payload.failure.clone();
    let decoder = ruzstd::decoding::StreamingDecoder::new(payload).map_err(|e| {
        failure
            .borrow_mut()
            .take()
            .unwrap_or_else(|| Error::SlotContents(format!("the payload is not a zstd frame: {e}")))
    })?;
    Ok((decoder, failure))
}

/// The slot contents of the full bundle `manifest` from `inner`.
pub fn slot_reader<R: Read>(inner: R, manifest: &Manifest) -> Result<SlotReader<R>, Error> {
    if manifest.base.is_some() {
        return Err(Error::Delta(
            "this is a delta bundle: it needs the base slot contents".into(),
        ));
    }
    let (decoder, failure) = decoder(inner, manifest)?;
    Ok(SlotReader::new(Stream::Full(decoder), failure, manifest))
}

/// The slot contents of the delta bundle `manifest` from `inner`, applied
/// to `base` (checked beforehand with [`crate::check_base`]).
pub fn delta_reader<R: Read>(
    inner: R,
    manifest: &Manifest,
    base: std::fs::File,
) -> Result<SlotReader<R>, Error> {
    let Some(b) = &manifest.base else {
        return Err(Error::Delta("this is a full bundle, not a delta".into()));
    };
    let (decoder, failure) = decoder(inner, manifest)?;
    let patch = Patch::new(decoder, base, b.size);
    Ok(SlotReader::new(Stream::Delta(patch), failure, manifest))
}

/// Checks a delta bundle's payload without its base: every chunk, every
/// op, and that the ops make `slot-size` bytes.
pub fn walk_delta<R: Read>(inner: R, manifest: &Manifest) -> Result<DeltaStats, Error> {
    let Some(b) = &manifest.base else {
        return Err(Error::Delta("this is a full bundle, not a delta".into()));
    };
    let (mut decoder, failure) = decoder(inner, manifest)?;
    let hidden = |e: Error| failure.borrow_mut().take().unwrap_or(e);
    let stats = crate::delta::walk(&mut decoder, b.size).map_err(hidden)?;
    decoder.get_mut().finish()?;
    let made = stats.copied + stats.zeroed + stats.literal;
    if made != manifest.slot_size {
        return Err(Error::SlotContents(format!(
            "the delta makes {made} bytes, the manifest says {}",
            manifest.slot_size
        )));
    }
    Ok(stats)
}

impl<R: Read> SlotReader<R> {
    fn new(stream: Stream<R>, failure: Failure, manifest: &Manifest) -> Self {
        SlotReader {
            stream,
            failure,
            hasher: Sha256::new(),
            size: 0,
            expected_size: manifest.slot_size,
            expected_sha256: manifest.slot_sha256,
        }
    }

    fn check_end(&mut self) -> Result<(), Error> {
        self.stream.payload().finish()?;
        if self.size != self.expected_size {
            return Err(Error::SlotContents(format!(
                "{} bytes, the manifest says {}",
                self.size, self.expected_size
            )));
        }
        let digest: [u8; 32] = self.hasher.clone().finalize().into();
        if digest != self.expected_sha256 {
            return Err(Error::SlotContents(
                "their SHA-256 differs from the manifest's".into(),
            ));
        }
        Ok(())
    }
}

impl<R: Read> Read for SlotReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let read = match &mut self.stream {
            Stream::Full(d) => d.read(out),
            Stream::Delta(p) => p.read(out),
        };
        let n = read.map_err(|e| {
            self.failure.borrow_mut().take().unwrap_or_else(|| {
                match e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
                    Some(inner) => inner.clone(),
                    None => Error::SlotContents(format!("decompressing: {e}")),
                }
            })
        })?;
        if n == 0 {
            self.check_end()?;
            return Ok(0);
        }
        self.size += n as u64;
        if self.size > self.expected_size {
            return Err(Error::SlotContents(format!(
                "more than the {} bytes the manifest says",
                self.expected_size
            ))
            .into());
        }
        self.hasher.update(&out[..n]);
        Ok(n)
    }
}
