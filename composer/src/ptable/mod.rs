//! Partition tables: the partition type names users write, and encoders
//! that turn a [`crate::plan::Plan`] into the bytes of its table regions.
//!
//! - [`types`]: `type:` shorthands → GPT type GUID + MBR type byte.

pub mod types;
