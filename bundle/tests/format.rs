//! The bundle stream end to end: sealed by the writer's steps, read back by
//! the installer's; every refusal names its reason, and no change of any
//! byte or truncation gets through or panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bundle::{
    key_from_seed, read_signed, seal, slot_reader, Error, Manifest, SlotKind, HEADER_BYTES,
    MIN_CHUNK_BYTES, SIGNATURE_BYTES,
};
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use std::io::Read;

fn slot_bytes(len: usize) -> Vec<u8> {
    // Compressible but not trivially: a counter pattern with zero runs.
    (0..len)
        .map(|i| {
            if (i / 4096) % 3 == 0 {
                0
            } else {
                (i * 7 / 13) as u8
            }
        })
        .collect()
}

/// A bundle as `image-composer bundle` makes one: compressed payload,
/// chunk hashes, sealed manifest.
fn make(slot: &[u8], seed: u8, compatible: &str) -> Vec<u8> {
    let payload = zstd::bulk::compress(slot, 3).unwrap();
    let chunk_size = MIN_CHUNK_BYTES;
    let manifest = Manifest {
        image: "test".into(),
        version: "1.0".into(),
        compatible: compatible.into(),
        slot: SlotKind::Partition,
        slot_size: slot.len() as u64,
        slot_sha256: Sha256::digest(slot).into(),
        verity: None,
        base: None,
        payload_size: payload.len() as u64,
        chunk_size,
        chunks: payload
            .chunks(chunk_size as usize)
            .map(|c| Sha256::digest(c).into())
            .collect(),
    };
    let mut out = seal(&manifest, &key_from_seed([seed; 32])).unwrap();
    out.extend_from_slice(&payload);
    out
}

/// What the installer does: verify with `seed`'s key, then decompress
/// and check; the slot contents or the first refusal.
fn install(bytes: &[u8], seed: u8) -> Result<Vec<u8>, Error> {
    let mut r = bytes;
    let signed = read_signed(&mut r)?;
    let (_, manifest) = signed.verify(&[key_from_seed([seed; 32]).verifying_key()])?;
    let mut slot = slot_reader(r, &manifest)?;
    let mut out = Vec::new();
    slot.read_to_end(&mut out)
        .map_err(|e| bundle::error_from_io(e, "payload"))?;
    Ok(out)
}

fn big_bundle() -> (Vec<u8>, Vec<u8>) {
    // Incompressible enough to span several chunks.
    let mut slot = slot_bytes(300_000);
    let mut x: u32 = 1;
    for b in slot.iter_mut().step_by(3) {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *b = (x >> 16) as u8;
    }
    let bundle = make(&slot, 1, "board");
    (slot, bundle)
}

#[test]
fn round_trip_and_reproducible() {
    let (slot, bundle) = big_bundle();
    assert!(bundle.len() > HEADER_BYTES + 3 * MIN_CHUNK_BYTES as usize);
    assert_eq!(install(&bundle, 1).unwrap(), slot);
    assert_eq!(make(&slot, 1, "board"), bundle, "same inputs, same bytes");
}

#[test]
fn refusals_name_their_reason() {
    let (_, bundle) = big_bundle();
    let manifest_len = u32::from_le_bytes(bundle[12..16].try_into().unwrap()) as usize;
    let payload_at = HEADER_BYTES + manifest_len + SIGNATURE_BYTES;

    assert_eq!(install(&bundle, 2), Err(Error::BadSignature), "another key");

    let mut t = bundle.clone();
    t[payload_at + MIN_CHUNK_BYTES as usize + 5] ^= 1;
    assert_eq!(install(&t, 1), Err(Error::ChunkHash(1)), "tampered payload");

    let mut t = bundle.clone();
    t[HEADER_BYTES + 20] ^= 1;
    assert_eq!(
        install(&t, 1),
        Err(Error::BadSignature),
        "tampered manifest"
    );

    let mut t = bundle.clone();
    t[8] = 2;
    assert_eq!(install(&t, 1), Err(Error::UnknownFormat(2)));
    assert!(Error::UnknownFormat(2)
        .to_string()
        .contains("version 2 is unknown"));

    let mut t = bundle.clone();
    t[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        install(&t, 1),
        Err(Error::ManifestTooLarge(u32::MAX.into()))
    );

    assert_eq!(install(b"GIF89a..........", 1), Err(Error::BadMagic));

    for (cut, part) in [
        (3, "header"),
        (HEADER_BYTES + 5, "manifest"),
        (payload_at - 1, "signature"),
        (payload_at + 100, "payload"),
        (bundle.len() - 1, "payload"),
    ] {
        assert_eq!(
            install(&bundle[..cut], 1),
            Err(Error::Truncated(part)),
            "cut at {cut}"
        );
    }

    let mut t = bundle.clone();
    t.push(0);
    assert_eq!(install(&t, 1), Err(Error::TrailingData));
}

#[test]
fn manifest_that_lies_about_the_slot_is_refused() {
    let slot = slot_bytes(10_000);
    let payload = zstd::bulk::compress(&slot, 3).unwrap();
    let good = Manifest {
        image: "test".into(),
        version: "1.0".into(),
        compatible: "board".into(),
        slot: SlotKind::Partition,
        slot_size: slot.len() as u64,
        slot_sha256: Sha256::digest(&slot).into(),
        verity: None,
        base: None,
        payload_size: payload.len() as u64,
        chunk_size: MIN_CHUNK_BYTES,
        chunks: vec![Sha256::digest(&payload).into()],
    };
    let key = key_from_seed([1; 32]);
    for (bad, text) in [
        (
            Manifest {
                slot_size: 9_999,
                ..good.clone()
            },
            "more than the 9999 bytes",
        ),
        (
            Manifest {
                slot_size: 10_001,
                ..good.clone()
            },
            "10000 bytes, the manifest says 10001",
        ),
        (
            Manifest {
                slot_sha256: [0; 32],
                ..good.clone()
            },
            "SHA-256 differs",
        ),
        (
            Manifest {
                base: Some(bundle::Base {
                    version: "0.9".into(),
                    size: 1,
                    sha256: [0; 32],
                }),
                ..good.clone()
            },
            "this is a delta bundle: it needs the base",
        ),
    ] {
        let mut b = seal(&bad, &key).unwrap();
        b.extend_from_slice(&payload);
        let err = install(&b, 1).unwrap_err();
        assert!(err.to_string().contains(text), "{err}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn no_changed_byte_gets_through(pos in any::<prop::sample::Index>(), xor in 1u8..) {
        let (_, bundle) = big_bundle_cached();
        let mut t = bundle.clone();
        let i = pos.index(t.len());
        t[i] ^= xor;
        prop_assert!(install(&t, 1).is_err(), "byte {} changed, accepted", i);
    }

    #[test]
    fn no_truncation_gets_through(pos in any::<prop::sample::Index>()) {
        let (_, bundle) = big_bundle_cached();
        let cut = pos.index(bundle.len());
        prop_assert!(install(&bundle[..cut], 1).is_err());
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..400),
        len in 0u32..600,
    ) {
        let mut t = b"ICBUNDLE".to_vec();
        t.extend_from_slice(&1u32.to_le_bytes());
        t.extend_from_slice(&len.to_le_bytes());
        t.extend_from_slice(&body);
        if let Ok(signed) = read_signed(&mut t.as_slice()) {
            let _ = signed.manifest_unverified();
        }
        prop_assert!(install(&t, 1).is_err());
    }
}

fn big_bundle_cached() -> &'static (Vec<u8>, Vec<u8>) {
    static CELL: std::sync::OnceLock<(Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
    CELL.get_or_init(big_bundle)
}
