//! image-composer: builds disk images for embedded Linux devices from one
//! declarative YAML description.
//!
//! Data flows one way: [`config`] (YAML → typed model with spans) →
//! [`plan`] (pure: sizes in, every byte range of the disk out) → [`compose`]
//! (content writers in [`fs`] and table encoders in [`ptable`] fill their
//! regions of the image in place) → [`output`] (sparse image, bmap,
//! compressed copies, all via `.partial` + rename). [`flash`] writes a built
//! image to a disk.

pub mod compose;
pub mod config;
pub mod diag;
pub mod flash;
pub mod fs;
pub mod ids;
pub mod import;
pub mod input;
pub mod output;
pub mod plan;
pub mod ptable;
pub mod units;
pub mod updates;

/// Logs to stderr, one line per step, no timestamps; colours only on a
/// terminal. `quiet` keeps warnings and errors; each `verbose` adds a level.
pub fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_target(false)
        .init();
}
