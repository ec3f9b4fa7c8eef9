//! image-composer: builds disk images for embedded Linux devices from one
//! declarative YAML description.
//!
//! Data flows one way: [`config`] (YAML → typed model with spans) →
//! [`plan`] (pure: sizes in, every byte range of the disk out) → [`build`]
//! (content writers in [`fs`] and table encoders in [`ptable`] fill their
//! regions of the image in place) → [`output`] (sparse image, bmap,
//! compressed copies, all via `.partial` + rename).

pub mod build;
pub mod config;
pub mod diag;
pub mod fs;
pub mod ids;
pub mod output;
pub mod plan;
pub mod ptable;
pub mod units;
