//! The `image-composer` command line: parse, set up logging, run, map the
//! outcome to an exit status (0 ok, 1 build failed, 2 bad input).

mod cli;
mod manual;

use clap::Parser;
use composer::compose::{self, Error, Request};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    composer::init_logging(cli.verbose, cli.quiet);
    let outcome = match cli.command {
        cli::Command::Build {
            input,
            output_dir,
            reference,
        } => compose::build(&request(input, reference), &output_dir).map(|_| ()),
        cli::Command::Validate { input } => compose::validate(&request(input, None)),
        cli::Command::Plan { input, json, svg } => {
            compose::print_plan(&request(input, None), json, svg.as_deref())
        }
        cli::Command::Bundle {
            input,
            output_dir,
            key,
            version,
            reference,
        } => {
            let version = version.as_deref();
            let request = request(input, reference);
            compose::bundle::bundle(&request, &output_dir, &key, version).map(|_| ())
        }
        cli::Command::Delta {
            from,
            to,
            output_dir,
            key,
        } => composer::updates::delta(&from, &to, &output_dir, &key).map(|_| ()),
        cli::Command::Keygen { output_dir, name } => composer::updates::keygen(&output_dir, &name)
            .map(|_| ())
            .map_err(Error::Build),
        cli::Command::BundleInfo { bundle, key } => {
            composer::updates::info(&bundle, key.as_deref())
        }
        cli::Command::Flash {
            image,
            target,
            bmap,
            no_verify,
            yes,
        } => composer::flash::flash(&composer::flash::Request {
            image,
            target,
            bmap,
            verify: !no_verify,
            yes,
        }),
        cli::Command::Import {
            input,
            output,
            format,
        } => composer::import::run(&composer::import::Request {
            input,
            output,
            format: format.and_then(|f| f.parse().ok()),
        }),
        cli::Command::Completions { shell } => {
            manual::print_completions(shell).map_err(Error::Build)
        }
        cli::Command::Schema => manual::print_schema().map_err(Error::Build),
        cli::Command::Man { output_dir } => {
            manual::write_man_pages(&output_dir).map_err(Error::Build)
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Input(diagnostics)) => {
            eprintln!("{diagnostics}");
            ExitCode::from(2)
        }
        Err(Error::Build(err)) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn request(input: cli::InputArgs, reference: Option<std::path::PathBuf>) -> Request {
    Request {
        reference,
        config: input.config,
        vars: input.vars.into_iter().collect(),
        input_dirs: input.input_dirs,
        layer_dirs: input.layer_dirs,
    }
}
