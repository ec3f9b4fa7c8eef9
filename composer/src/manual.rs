//! Shell completions and man pages, generated from the clap definition in
//! `cli.rs` so they cannot disagree with the command line.
//!
//! `completions SHELL` prints one script to stdout (what shells' packaging
//! conventions expect: the install script redirects it into place);
//! `man -o DIR` writes `image-composer.1` and one `image-composer-SUB.1` per
//! subcommand, staged and committed together like a build's outputs
//! (`output::staging`), so an interrupted run leaves no half page.
//! `schema` prints the JSON Schema of descriptions (made from the decoder's
//! key tables, `config::schema`), installed beside them for editors.
//!
//! Rejected: a `build.rs` that writes them at compile time (it would need
//! the CLI types in a second crate or included twice, and cargo's OUT_DIR
//! is not a place an install step can find); hand-written pages (they
//! drift from `--help`).

use crate::cli::Cli;
use anyhow::{Context, Result};
use clap::CommandFactory;
use composer::output::staging::Staging;
use std::io::Write;
use std::path::Path;

/// The binary's name, as installed and as completions register it.
const BIN_NAME: &str = "image-composer";

/// Prints the completion script for `shell` to stdout.
pub fn print_completions(shell: clap_complete::Shell) -> Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN_NAME, &mut out);
    std::io::stdout()
        .write_all(&out)
        .context("writing the completion script to stdout")
}

/// Prints the JSON Schema of descriptions (`config::json_schema`).
pub fn print_schema() -> Result<()> {
    std::io::stdout()
        .write_all(composer::config::json_schema().as_bytes())
        .context("writing the schema to stdout")
}

/// Writes the man page of the command and of each subcommand into `dir`.
pub fn write_man_pages(dir: &Path) -> Result<()> {
    let mut cmd = Cli::command();
    // Building names each subcommand `image-composer-SUB` for its page.
    cmd.build();
    let mut pages = vec![clap_mangen::Man::new(cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        pages.push(clap_mangen::Man::new(sub.clone()));
    }
    let mut staging = Staging::for_output_dir(dir);
    for page in pages {
        let file_name = page.get_filename();
        let mut file = staging.create(&file_name)?;
        let mut text = Vec::new();
        page.render(&mut text)
            .with_context(|| format!("rendering man page '{file_name}'"))?;
        file.write_all(&text)
            .with_context(|| format!("writing man page '{file_name}'"))?;
    }
    staging.commit()?;
    Ok(())
}
