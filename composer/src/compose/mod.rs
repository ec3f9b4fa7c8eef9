//! The build pipeline: description → prepared contents → plan → image.
//!
//! This is the only module that knows every other: it loads the description
//! (`config`), prepares each content (scans trees, measures inputs: `fs`),
//! converts the model into the planner's vocabulary and plans (`plan`), then
//! writes every region of the plan in disk order into one fresh `.partial`
//! image through [`Window`](crate::output::window::Window)s, while a second thread hashes the blocks that
//! are final for the bmap (`output::bmap::Hasher`). Tables come from
//! `ptable`. Every output is staged and committed together at the end
//! ([`Staging`]).

pub mod bundle;
pub mod layout;
pub mod prepare;
pub mod reference;
pub mod write;

use crate::config::{self, Description, LoadOptions};
use crate::diag::{Diagnostic, Diagnostics, Span};
use crate::fs::BuildContext;
use crate::ids::Seed;
use crate::output::staging::Staging;
use crate::plan::{PartSpec, Plan};
use anyhow::Context;
use prepare::Contents;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the user asked for, independent of the command line.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub config: PathBuf,
    /// `--var KEY=VALUE`: wins over the environment.
    pub vars: BTreeMap<String, String>,
    pub input_dirs: Vec<PathBuf>,
    pub layer_dirs: Vec<PathBuf>,
    /// `--reference`: the previous release, for stable placement.
    pub reference: Option<PathBuf>,
}

/// Why a command did not succeed: bad input (exit 2) or a failed build (exit 1).
#[derive(Debug)]
pub enum Error {
    Input(Diagnostics),
    Build(anyhow::Error),
}

impl From<Diagnostics> for Error {
    fn from(d: Diagnostics) -> Self {
        Error::Input(d)
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        Error::Build(e)
    }
}

/// Checks everything that can be checked without writing.
pub fn validate(request: &Request) -> Result<(), Error> {
    let (_, _, plan, _) = resolve(request, &mut Staging::private())?;
    tracing::info!(
        "{}: valid ({} regions, {})",
        request.config.display(),
        plan.regions.len(),
        crate::units::human(plan.disk_size)
    );
    Ok(())
}

/// Prints the resolved layout as a table, or as JSON, with the owners
/// chosen for each `from:` tree and why.
pub fn print_plan(request: &Request, json: bool, svg: Option<&Path>) -> Result<(), Error> {
    let (desc, contents, plan, specs) = resolve(request, &mut Staging::private())?;
    if let Some(path) = svg {
        write_svg(path, &crate::plan::render_svg(&plan, &specs))?;
    }
    let image = &desc.image.name.value;
    let outputs: Vec<String> = desc
        .outputs
        .iter()
        .map(|o| o.value.file_name(image))
        .collect();
    let text = if json {
        let mut value = crate::plan::render_json(&plan, &specs);
        if let Some(top) = value.as_object_mut() {
            let owners = contents
                .ownership
                .iter()
                .map(|(name, c)| {
                    serde_json::json!({
                        "content": name,
                        "owners": c.owners.name(),
                        "reason": c.reason,
                    })
                })
                .collect();
            top.insert("owners".into(), serde_json::Value::Array(owners));
            top.insert("outputs".into(), serde_json::json!(outputs));
            let verity = contents
                .verity(&desc)
                .into_iter()
                .map(|(name, v)| {
                    let value = serde_json::json!({
                        "roothash": v.root_hash,
                        "salt": v.salt,
                        "hash_algorithm": "sha256",
                        "data_block_size": crate::fs::verity::BLOCK,
                        "hash_block_size": crate::fs::verity::BLOCK,
                        "data_blocks": v.data_blocks,
                        "hash_offset": v.hash_offset,
                        "hash_start_block": v.hash_start_block(),
                        "uuid": v.uuid,
                    });
                    (name, value)
                })
                .collect();
            top.insert("verity".into(), serde_json::Value::Object(verity));
        }
        let mut text = serde_json::to_string_pretty(&value).map_err(anyhow::Error::from)?;
        text.push('\n');
        text
    } else {
        let mut text = crate::plan::render_text(&plan, &specs);
        text.push_str(&format!("\noutputs: {}\n", outputs.join(", ")));
        if !contents.ownership.is_empty() {
            text.push_str("\nowners of the source trees:\n");
            for (name, c) in &contents.ownership {
                text.push_str(&format!("  {name}: {}: {}\n", c.owners.name(), c.reason));
            }
        }
        let verity = contents.verity(&desc);
        if !verity.is_empty() {
            text.push_str("\ndm-verity:\n");
            for (name, v) in verity {
                text.push_str(&format!(
                    "  {name}: roothash {} data-blocks {} hash-offset {}\n",
                    v.root_hash, v.data_blocks, v.hash_offset
                ));
            }
        }
        text
    };
    print_quietly(&text).context("writing the plan to stdout")?;
    Ok(())
}

/// Writes the plan's picture to `path`, staged and renamed into place.
fn write_svg(path: &Path, svg: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let name = path.file_name().and_then(|n| n.to_str()).with_context(|| {
        format!(
            "writing the plan picture: '{}' names no file",
            path.display()
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut staging = Staging::for_output_dir(dir);
    let mut file = staging.create(name)?;
    file.write_all(svg.as_bytes())
        .with_context(|| format!("writing the plan picture '{}'", path.display()))?;
    staging.commit()?;
    Ok(())
}

/// Writes `text` to stdout; a reader that went away (`plan | head -1`) is
/// no error: nobody is left to read the rest.
fn print_quietly(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Builds the image, its bmap and every requested output into `out_dir`.
///
/// The description is validated as by [`validate`] before anything is
/// created: a bad description leaves `out_dir` as it was (not even created).
/// Scratch files of filesystems used as files go next to the outputs when
/// the directory exists, else to the temporary directory.
pub fn build(request: &Request, out_dir: &Path) -> Result<write::Written, Error> {
    let mut staging = Staging::for_output_dir(out_dir);
    // Scratch files go next to the outputs when the directory exists, else
    // to a private directory under $TMPDIR: a bad description must not
    // create `out_dir`.
    let mut scratch = (!out_dir.is_dir()).then(Staging::private);
    let (desc, contents, plan, _) = resolve(request, scratch.as_mut().unwrap_or(&mut staging))?;
    let written = write::write_all(&desc, &plan, &contents, staging)?;
    drop(scratch);
    Ok(written)
}

type Resolved = (Description, Contents, Plan, Vec<PartSpec>);

/// Loads, prepares and plans: everything before the first byte is written.
fn resolve(request: &Request, staging: &mut Staging) -> Result<Resolved, Error> {
    let opts = LoadOptions {
        vars: request.vars.clone(),
        use_env: true,
        layer_dirs: layer_dirs(&request.layer_dirs),
        input_dirs: request.input_dirs.clone(),
    };
    // Every problem of the description and of its contents in one run: the
    // contents of entries the config accepted are prepared even when others
    // have problems; the plan needs them all.
    let (desc, mut diags) = config::load_all(&request.config, &opts);
    let source_date_epoch = match source_date_epoch() {
        Ok(sde) => sde,
        Err(Error::Input(more)) => {
            diags.extend(more.0);
            None
        }
        Err(e) => return Err(e),
    };
    let prepared = match &desc {
        Some(desc) => {
            let ctx = BuildContext {
                seed: Seed(desc.image.seed.value.clone()),
                source_date_epoch,
            };
            let reference = match &request.reference {
                None => None,
                Some(path) => match reference::Reference::open(path, desc, staging) {
                    Ok(r) => Some(r),
                    Err(Error::Input(more)) => {
                        diags.extend(more.0);
                        None
                    }
                    Err(e) => return Err(e),
                },
            };
            match prepare::prepare(desc, &ctx, staging, &diags, reference.as_ref()) {
                Ok(contents) => Some((contents, ctx)),
                Err(prepare::Failure::Input(more)) => {
                    diags.extend(more);
                    None
                }
                Err(prepare::Failure::Build(e)) => return Err(Error::Build(e)),
            }
        }
        None => None,
    };
    let (Some(desc), Some((contents, ctx)), true) = (desc, prepared, diags.is_empty()) else {
        return Err(Error::Input(config::sorted(diags, &request.config)));
    };
    tracing::debug!(
        "layers, in the order they were merged: {}",
        desc.layer_files
            .iter()
            .chain(std::iter::once(&request.config))
            .map(|p| format!("'{}'", p.display()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (disk, specs) = layout::specs(&desc, &contents, &ctx.seed).map_err(Diagnostics)?;
    let plan = crate::plan::allocate(&disk, &specs).map_err(Diagnostics)?;
    tracing::debug!(
        "plan:\n{}",
        crate::plan::render_text(&plan, &specs).trim_end()
    );
    Ok((desc, contents, plan, specs))
}

/// `SOURCE_DATE_EPOCH` from the environment, when set.
fn source_date_epoch() -> Result<Option<u64>, Error> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(_) => Ok(None),
        Ok(text) if text.trim().is_empty() => Ok(None),
        Ok(text) => text.trim().parse().map(Some).map_err(|_| {
            Error::Input(Diagnostics(vec![Diagnostic::new(
                Span::new(Arc::new(PathBuf::from("environment")), 0, 0),
                "SOURCE_DATE_EPOCH",
                format!("\"{text}\" is not a number of seconds since 1970"),
            )
            .help(
                "set it to a Unix time, e.g. SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)",
            )]))
        }),
    }
}

/// Where layer names are looked up: `--layer-dir`, then
/// `$IMAGE_COMPOSER_LAYER_PATH`, then `<bin>/../share/image-composer/layers`,
/// then the source tree's `layers/`.
fn layer_dirs(cli: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs = cli.to_vec();
    if let Some(path) = std::env::var_os("IMAGE_COMPOSER_LAYER_PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    if let Some(bin_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(bin_dir.join("../share/image-composer/layers"));
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../layers"));
    dirs
}
