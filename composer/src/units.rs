//! Byte sizes as users write them (`"64MiB"`, `"1G"`, `"32KiB"`, `"4096"`).
//!
//! One parser serves the CLI and the YAML, so both accept exactly the same
//! spellings. Units are binary (`K`, `KiB`, `k` all mean 1024) because disk
//! layouts are always counted in powers of two; decimal `kB`/`MB`/`GB`
//! are accepted as their SI values for users who copy sizes from datasheets.
//! Rejected: sector suffixes (`s`), since a sector's size depends on the disk
//! and a size must mean the same thing wherever it is written.

use std::fmt;
use std::str::FromStr;

/// A size or offset in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
pub const GIB: u64 = 1024 * MIB;
pub const TIB: u64 = 1024 * GIB;

/// The units a size may be written with, and their values (the JSON
/// Schema's pattern for sizes is made from this table too).
pub const UNITS: [(&str, u64); 20] = [
    ("", 1),
    ("B", 1),
    ("K", KIB),
    ("k", KIB),
    ("KiB", KIB),
    ("KB", KIB),
    ("Ki", KIB),
    ("M", MIB),
    ("MiB", MIB),
    ("Mi", MIB),
    ("G", GIB),
    ("GiB", GIB),
    ("Gi", GIB),
    ("T", TIB),
    ("TiB", TIB),
    ("Ti", TIB),
    ("kB", 1000),
    ("MB", 1000 * 1000),
    ("GB", 1000 * 1000 * 1000),
    ("TB", 1000 * 1000 * 1000 * 1000),
];

/// Why a string is not a size.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("is not a size")]
    NotASize,
    #[error("has an unknown unit '{0}'")]
    UnknownUnit(String),
    #[error("is too large (more than 16 EiB)")]
    Overflow,
}

impl ByteSize {
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = SizeError;

    fn from_str(text: &str) -> Result<Self, SizeError> {
        let text = text.trim();
        let digits_end = text
            .find(|c: char| !(c.is_ascii_digit() || c == '_'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(digits_end);
        let number: String = number.chars().filter(|&c| c != '_').collect();
        if number.is_empty() {
            return Err(SizeError::NotASize);
        }
        // Allow one decimal fraction ("1.5GiB") as long as the result is whole bytes.
        let (whole, fraction, unit) = match unit.strip_prefix('.') {
            Some(rest) => {
                let frac_end = rest
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len());
                if frac_end == 0 {
                    return Err(SizeError::NotASize);
                }
                (number, &rest[..frac_end], &rest[frac_end..])
            }
            None => (number, "", unit),
        };
        let unit = unit.trim();
        let multiplier = match UNITS.iter().find(|(name, _)| *name == unit) {
            Some(&(_, m)) => m,
            None => return Err(SizeError::UnknownUnit(unit.to_string())),
        };
        let whole: u64 = whole.parse().map_err(|_| SizeError::Overflow)?;
        let mut bytes = whole.checked_mul(multiplier).ok_or(SizeError::Overflow)?;
        if !fraction.is_empty() {
            let scale = 10u64
                .checked_pow(u32::try_from(fraction.len()).map_err(|_| SizeError::NotASize)?)
                .ok_or(SizeError::NotASize)?;
            let frac: u64 = fraction.parse().map_err(|_| SizeError::NotASize)?;
            let scaled = u128::from(frac) * u128::from(multiplier);
            if scaled % u128::from(scale) != 0 {
                return Err(SizeError::NotASize);
            }
            let extra =
                u64::try_from(scaled / u128::from(scale)).map_err(|_| SizeError::Overflow)?;
            bytes = bytes.checked_add(extra).ok_or(SizeError::Overflow)?;
        }
        Ok(ByteSize(bytes))
    }
}

impl fmt::Display for ByteSize {
    /// The largest binary unit that divides the size exactly: `64MiB`, `1536KiB`, `513`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, name) in [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
            if b != 0 && b % unit == 0 {
                return write!(f, "{}{}", b / unit, name);
            }
        }
        write!(f, "{b}")
    }
}

/// A size for people: `1.5 GiB`, `300 KiB`, `17 B` (rounded, for messages and tables).
pub fn human(bytes: u64) -> String {
    let units = [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")];
    for (unit, name) in units {
        if bytes >= unit {
            let value = bytes as f64 / unit as f64;
            return if bytes % unit == 0 {
                format!("{} {}", bytes / unit, name)
            } else {
                format!("{value:.1} {name}")
            };
        }
    }
    format!("{bytes} B")
}

/// Rounds `value` up to a multiple of `align` (`align` > 0); `None` on overflow.
pub fn align_up(value: u64, align: u64) -> Option<u64> {
    debug_assert!(align > 0);
    let rem = value % align;
    if rem == 0 {
        Some(value)
    } else {
        value.checked_add(align - rem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spellings_users_write() {
        let cases = [
            ("4096", 4096),
            ("64MiB", 64 * MIB),
            ("64M", 64 * MIB),
            ("1G", GIB),
            ("32KiB", 32 * KIB),
            ("32k", 32 * KIB),
            ("1.5GiB", 3 * GIB / 2),
            ("1_000", 1000),
            ("2 MiB", 2 * MIB),
            ("1MB", 1_000_000),
        ];
        for (text, bytes) in cases {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(bytes)), "{text}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_size() {
        assert_eq!(
            "12QB".parse::<ByteSize>(),
            Err(SizeError::UnknownUnit("QB".into()))
        );
        assert_eq!("MiB".parse::<ByteSize>(), Err(SizeError::NotASize));
        assert_eq!("".parse::<ByteSize>(), Err(SizeError::NotASize));
        assert_eq!("1.3B".parse::<ByteSize>(), Err(SizeError::NotASize));
        assert_eq!(
            "99999999999TiB".parse::<ByteSize>(),
            Err(SizeError::Overflow)
        );
    }

    #[test]
    fn displays_exact_units() {
        assert_eq!(ByteSize(64 * MIB).to_string(), "64MiB");
        assert_eq!(ByteSize(1536 * KIB).to_string(), "1536KiB");
        assert_eq!(ByteSize(513).to_string(), "513");
        assert_eq!(ByteSize(0).to_string(), "0");
        assert_eq!(human(3 * GIB / 2), "1.5 GiB");
    }

    #[test]
    fn display_round_trips() {
        for bytes in [0, 1, 512, 4096, 3 * MIB, 7 * GIB + 512] {
            let text = ByteSize(bytes).to_string();
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(bytes)));
        }
    }
}
