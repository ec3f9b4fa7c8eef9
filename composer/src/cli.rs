//! The command line, as clap derive types only; `main` maps it onto the library.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Build disk images for embedded Linux devices from one YAML description.
///
/// The description names the partition table, the partitions and what fills
/// them (filesystems built from directories, raw images, initramfs archives);
/// `build` writes a sparse disk image and its bmap, without root, loop devices
/// or mounts. See docs/config.md for the schema.
#[derive(Debug, Parser)]
#[command(name = "image-composer", version, max_term_width = 80)]
pub struct Cli {
    /// Print more detail (-v: each step's decisions, -vv: every file)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Print only warnings and errors
    #[arg(short, long, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the disk image, its bmap and every requested output
    Build {
        #[command(flatten)]
        input: InputArgs,

        /// Directory the outputs are written to (created if missing)
        #[arg(short, long, value_name = "DIR", default_value = ".")]
        output_dir: PathBuf,

        /// The previous release (its NAME.img, full bundle or ext4 image):
        /// unchanged files of ext4 filesystems keep their places, so deltas
        /// stay small (docs/ext4.md, "Stable placement")
        #[arg(long, value_name = "OLD")]
        reference: Option<PathBuf>,
    },
    /// Check the description and its inputs without writing anything
    Validate {
        #[command(flatten)]
        input: InputArgs,
    },
    /// Print the resolved layout: every region of the disk
    Plan {
        #[command(flatten)]
        input: InputArgs,

        /// Print the plan as JSON (see docs/plan-json.md)
        #[arg(long)]
        json: bool,

        /// Also draw the plan as an SVG picture into FILE
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// Write a signed update bundle of the slot contents (docs/updates.md)
    Bundle {
        #[command(flatten)]
        input: InputArgs,

        /// Directory the bundle is written to (created if missing)
        #[arg(short, long, value_name = "DIR", default_value = ".")]
        output_dir: PathBuf,

        /// The secret key to sign with (from `keygen`)
        #[arg(long, value_name = "KEY")]
        key: PathBuf,

        /// The bundle's version (default: `update.version`)
        #[arg(long, value_name = "V")]
        version: Option<String>,

        /// The previous release (its NAME.img, full bundle or ext4 image):
        /// unchanged files of ext4 filesystems keep their places, so deltas
        /// stay small (docs/ext4.md, "Stable placement")
        #[arg(long, value_name = "OLD")]
        reference: Option<PathBuf>,
    },
    /// Write a signed delta bundle: what NEW's slot lacks from OLD's
    Delta {
        /// The full bundle the device runs (the delta's base)
        #[arg(long, value_name = "OLD.bundle")]
        from: PathBuf,

        /// The full bundle to install
        #[arg(long, value_name = "NEW.bundle")]
        to: PathBuf,

        /// Directory the delta bundle is written to (created if missing)
        #[arg(short, long, value_name = "DIR", default_value = ".")]
        output_dir: PathBuf,

        /// The secret key to sign with (from `keygen`)
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
    },
    /// Make an Ed25519 key pair for bundles: NAME.key and NAME.pub
    Keygen {
        /// Directory the keys are written to (created if missing)
        #[arg(short, long, value_name = "DIR", default_value = ".")]
        output_dir: PathBuf,

        /// File name stem of the keys
        #[arg(long, value_name = "NAME", default_value = "bundle")]
        name: String,
    },
    /// Print a bundle's manifest and check its payload (and signature)
    BundleInfo {
        /// The bundle file
        #[arg(value_name = "BUNDLE")]
        bundle: PathBuf,

        /// Check the signature with this public key (`.pub`)
        #[arg(long, value_name = "PUB")]
        key: Option<PathBuf>,
    },
    /// Write an image to a disk or file: only its mapped blocks, checked
    Flash {
        /// The image (NAME.img, or compressed: NAME.img.zst, .xz, .gz)
        #[arg(value_name = "IMAGE")]
        image: PathBuf,

        /// The disk (/dev/sdX, /dev/mmcblkN) or file to write to
        #[arg(value_name = "TARGET")]
        target: PathBuf,

        /// The bmap (default: IMAGE's, e.g. NAME.img.bmap)
        #[arg(long, value_name = "FILE")]
        bmap: Option<PathBuf>,

        /// Do not read the written blocks back to check them
        #[arg(long)]
        no_verify: bool,

        /// Write to a disk without asking first
        #[arg(long)]
        yes: bool,
    },
    /// Translate a genimage config or a wic .wks file into a description
    Import {
        /// The genimage configuration (genimage.cfg) or wic kickstart (.wks)
        #[arg(value_name = "FILE")]
        input: PathBuf,

        /// Write the description to FILE instead of stdout
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,

        /// The input's format (default: from its name, then its content)
        #[arg(long, value_name = "FORMAT", value_parser = ["genimage", "wks"])]
        format: Option<String>,
    },
    /// Print the shell completion script for SHELL
    Completions {
        /// The shell the script is for
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the JSON Schema of descriptions, for editors (docs/config.md)
    Schema,
    /// Write the man pages (image-composer.1, image-composer-build.1 ...)
    Man {
        /// Directory the pages are written to (created if missing)
        #[arg(short, long, value_name = "DIR", default_value = ".")]
        output_dir: PathBuf,
    },
}

/// What every subcommand reads.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// The YAML description of the disk
    #[arg(value_name = "CONFIG")]
    pub config: PathBuf,

    /// Set ${KEY} in the description (wins over the environment)
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,

    /// Search DIR for relative input paths (after the description's own dir)
    #[arg(long = "input-dir", value_name = "DIR")]
    pub input_dirs: Vec<PathBuf>,

    /// Search DIR for layers named in `layers:` (before the default paths)
    #[arg(long = "layer-dir", value_name = "DIR")]
    pub layer_dirs: Vec<PathBuf>,
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!(
            "'{text}' is not KEY=VALUE; write e.g. --var BINARIES_DIR=output/images"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_fits_in_80_columns() {
        let mut cmd = Cli::command();
        let mut texts = vec![cmd.render_long_help().to_string()];
        for sub in [
            "build",
            "validate",
            "plan",
            "bundle",
            "delta",
            "keygen",
            "bundle-info",
            "flash",
            "completions",
            "man",
        ] {
            let sub = cmd.find_subcommand_mut(sub).unwrap();
            texts.push(sub.render_long_help().to_string());
        }
        for text in texts {
            for line in text.lines() {
                assert!(line.chars().count() <= 80, "too wide: {line:?}");
            }
        }
    }

    #[test]
    fn vars_need_a_key() {
        assert_eq!(parse_var("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_var("=x").is_err());
        assert!(parse_var("novalue").is_err());
    }
}
