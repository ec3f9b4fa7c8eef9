//! The `image-composer` command line: parse, run, map errors to exit codes.

fn main() {
    println!("image-composer {}", env!("CARGO_PKG_VERSION"));
}
