//! The YAML description: read, merge layers, expand variables, validate, and
//! return a typed [`Description`] whose values carry their spans.
//!
//! Pipeline: [`yaml`] (text → node tree with spans and key paths) →
//! [`vars`] (`${NAME}` in every value) → [`layers`] (included files, merged
//! by name into one tree) → [`decode`] (schema, types, defaults, per-value
//! checks, input paths) → [`validate`] (references, cycles, cross-entry
//! rules). Every stage keeps going after a problem so that one run reports
//! them all, sorted by file and position. The schema and the merge rules are
//! documented for users in `docs/config.md`. The keys of each map are data
//! ([`schema`]: name, kind of value, description), owned by the decoder
//! beside the code reading them and rendered as a JSON Schema for editors.
//!
//! `config` knows YAML, not disks: sizes are parsed but not laid out, and a
//! partition `type:` is kept as text for the planner to look up. The only
//! I/O is reading the description and its layers and checking that the
//! input paths it names exist.

pub mod decode;
pub mod layers;
pub mod model;
pub mod schema;
pub mod validate;
pub mod vars;
pub mod yaml;

pub use model::*;

use crate::diag::{Diagnostic, Diagnostics, Span};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The JSON Schema of descriptions and layers, as `image-composer schema`
/// prints it (serde_json's maps are sorted: the same text on every run).
pub fn json_schema() -> String {
    format!("{:#}\n", schema::json_schema(&decode::TOP))
}

/// How to load a description (from the command line).
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `--var NAME=VALUE`; wins over the environment.
    pub vars: BTreeMap<String, String>,
    /// Whether `${NAME}` may come from the environment.
    pub use_env: bool,
    /// Where layer names are looked up (`<dir>/<name>/layer.yaml`), in order.
    pub layer_dirs: Vec<PathBuf>,
    /// `--input-dir`: where relative input paths are searched after the
    /// directory of the file that names them, in order.
    pub input_dirs: Vec<PathBuf>,
}

/// Reads and validates the description at `path`.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Description, Diagnostics> {
    let (description, diags) = load_all(path, opts);
    finish(description, diags, path)
}

/// Validates description `text` as if read from `path` (used in messages
/// and as the base of relative paths).
pub fn load_str(text: &str, path: &Path, opts: &LoadOptions) -> Result<Description, Diagnostics> {
    let (description, diags) = load_str_all(text, path, opts);
    finish(description, diags, path)
}

/// Reads the description at `path` and returns every problem found with
/// what could be decoded: entries with a problem are left out, so later
/// stages can still check the others in the same run (`None` when not
/// even the image could be decoded).
pub fn load_all(path: &Path, opts: &LoadOptions) -> (Option<Description>, Vec<Diagnostic>) {
    match crate::input::read_text(path) {
        Ok(text) => load_str_all(&text, path, opts),
        Err(crate::input::TextError::TooLong { line, column }) => (
            None,
            vec![Diagnostic::new(
                Span::new(Arc::new(path.to_path_buf()), line, column),
                "",
                format!(
                    "the description is longer than {} MiB",
                    crate::input::MAX_TEXT_BYTES >> 20
                ),
            )
            .help("a description has a few KiB; check that this is the file you meant")],
        ),
        Err(e) => (
            None,
            vec![Diagnostic::new(
                Span::new(Arc::new(path.to_path_buf()), 0, 0),
                "",
                format!("cannot read the description: {e}"),
            )
            .help("check the path and its permissions")],
        ),
    }
}

fn load_str_all(
    text: &str,
    path: &Path,
    opts: &LoadOptions,
) -> (Option<Description>, Vec<Diagnostic>) {
    let file = Arc::new(path.to_path_buf());
    let mut diags = Vec::new();
    let mut broken = std::collections::BTreeSet::new();
    let description = layers::load_merged(text, file.clone(), opts, &mut diags).and_then(|m| {
        let mut cx = decode::Cx {
            diags: &mut diags,
            input_dirs: &opts.input_dirs,
            broken: std::collections::BTreeSet::new(),
        };
        let d = decode::decode(&mut cx, &m.root, file, m.layer_files);
        broken = cx.broken;
        d
    });
    if let Some(d) = &description {
        validate::validate(d, &broken, &mut diags);
    }
    (description, diags)
}

/// The description when nothing is wrong, else every problem, in file
/// order.
fn finish(
    description: Option<Description>,
    diags: Vec<Diagnostic>,
    path: &Path,
) -> Result<Description, Diagnostics> {
    match description {
        Some(d) if diags.is_empty() => Ok(d),
        _ => Err(sorted(diags, path)),
    }
}

/// Problems in file order (stable: problems keep their discovery order
/// within one position), each once; never empty.
pub fn sorted(mut diags: Vec<Diagnostic>, path: &Path) -> Diagnostics {
    diags.sort_by(|a, b| a.span.cmp(&b.span));
    diags.dedup();
    if diags.is_empty() {
        diags.push(Diagnostic::new(
            Span::new(Arc::new(path.to_path_buf()), 0, 0),
            "",
            "the description could not be read",
        ));
    }
    Diagnostics(diags)
}

#[cfg(test)]
mod tests;
