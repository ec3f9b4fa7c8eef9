//! Key files: one line of text each, so they can be checked, copied and
//! installed with a shell:
//!
//! ```text
//! ed25519-secret <64 hex digits: the 32-byte seed>     bundle.key (mode 0600)
//! ed25519-public <64 hex digits: the 32-byte point>    bundle.pub
//! ```
//!
//! Rejected: PEM/PKCS#8 (an ASN.1 parser on the device for 32 bytes) and
//! OpenSSH keys (a second format to maintain; convert with a script if wanted).

use crate::manifest::{hex, parse_hex32};
use crate::Error;
pub use ed25519_dalek::{SigningKey, VerifyingKey};

const SECRET_TAG: &str = "ed25519-secret";
const PUBLIC_TAG: &str = "ed25519-public";

/// A signing key from 32 random bytes (the caller reads them from the OS).
pub fn key_from_seed(seed: [u8; 32]) -> SigningKey {
    SigningKey::from_bytes(&seed)
}

pub fn encode_secret_key(key: &SigningKey) -> String {
    format!("{SECRET_TAG} {}\n", hex(key.as_bytes()))
}

pub fn encode_public_key(key: &VerifyingKey) -> String {
    format!("{PUBLIC_TAG} {}\n", hex(key.as_bytes()))
}

fn tagged(text: &str, tag: &str) -> Result<[u8; 32], Error> {
    let line = text.trim_end_matches('\n');
    match line.split_once(' ') {
        Some((t, h)) if t == tag => parse_hex32(h).ok_or_else(|| {
            Error::Key(format!(
                "the key is not `{tag}` followed by 64 lowercase hex digits"
            ))
        }),
        _ => Err(Error::Key(format!(
            "not an image-composer key file: expected one line `{tag} <hex>`"
        ))),
    }
}

pub fn decode_secret_key(text: &str) -> Result<SigningKey, Error> {
    tagged(text, SECRET_TAG).map(|seed| SigningKey::from_bytes(&seed))
}

pub fn decode_public_key(text: &str) -> Result<VerifyingKey, Error> {
    let bytes = tagged(text, PUBLIC_TAG)?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| Error::Key("the public key is not a valid Ed25519 point".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_refuse_the_other_kind() {
        let key = key_from_seed([9; 32]);
        let secret = encode_secret_key(&key);
        let public = encode_public_key(&key.verifying_key());
        assert_eq!(
            decode_secret_key(&secret).unwrap().as_bytes(),
            key.as_bytes()
        );
        assert_eq!(decode_public_key(&public).unwrap(), key.verifying_key());
        assert!(decode_public_key(&secret).is_err());
        assert!(decode_secret_key(&public).is_err());
        assert!(decode_public_key("ed25519-public 00\n").is_err());
    }
}
