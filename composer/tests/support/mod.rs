//! Helpers shared by the integration tests: finding the independent tools
//! that check our output, running the binary, reading partition tables.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// True when `tool` is on the PATH. Without it the test is skipped on a
/// laptop (with a note) and fails in CI, which installs every tool
/// (`.ci/run` lists the Debian packages).
pub fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is required in CI: install it (see .ci/run)"
        );
        eprintln!("note: {tool} not found, skipping");
    }
    found
}

/// True when every tool is available (see [`have`]).
pub fn have_all(tools: &[&str]) -> bool {
    tools.iter().all(|t| have(t))
}

/// The repository's top directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `image-composer` with `args` and a fixed `SOURCE_DATE_EPOCH`.
pub fn composer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_image-composer"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("running image-composer")
}

/// Runs a command and returns its stdout; panics with its stderr on failure.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One partition as `sfdisk --json` reports it.
#[derive(Debug, Clone)]
pub struct SfdiskPart {
    pub start: u64,
    pub size: u64,
    pub type_: String,
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub attrs: Option<String>,
}

/// Reads the partition table of `image` with `sfdisk --json`.
pub fn sfdisk(image: &Path) -> (serde_json::Value, Vec<SfdiskPart>) {
    let text = run(Command::new("sfdisk").arg("--json").arg(image));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let parts = json["partitiontable"]["partitions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| SfdiskPart {
            start: p["start"].as_u64().unwrap(),
            size: p["size"].as_u64().unwrap(),
            type_: p["type"].as_str().unwrap().to_lowercase(),
            uuid: p["uuid"].as_str().map(str::to_lowercase),
            name: p["name"].as_str().map(str::to_string),
            attrs: p["attrs"].as_str().map(str::to_string),
        })
        .collect();
    (json, parts)
}

/// A fresh sparse file of `size` bytes at `path` (truncated if it exists),
/// open for reading and writing: what every writer expects as its target.
pub fn sparse_file(path: &Path, size: u64) -> std::fs::File {
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    file.set_len(size).unwrap();
    file
}

/// A QEMU serial log as text (carriage returns dropped), also copied to
/// the file named by the environment variable `keep_var` when it is set,
/// to read after a failure.
pub fn serial_log(serial: &Path, keep_var: &str) -> String {
    let log = String::from_utf8_lossy(&std::fs::read(serial).unwrap_or_default()).replace('\r', "");
    if let Ok(keep) = std::env::var(keep_var) {
        std::fs::write(keep, &log).unwrap();
    }
    log
}

/// The slot contents of the full bundle at `path`, in a file.
pub fn unpack(path: &Path) -> std::fs::File {
    let mut r = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let m = bundle::read_signed(&mut r)
        .unwrap()
        .manifest_unverified()
        .unwrap();
    let mut slot = bundle::slot_reader(r, &m).unwrap();
    let mut f = tempfile::tempfile().unwrap();
    std::io::copy(&mut slot, &mut f).unwrap();
    std::io::Seek::rewind(&mut f).unwrap();
    f
}
