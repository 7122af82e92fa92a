//! The `namedipc` command as a plain Rust binary; the same code runs behind
//! `python -m namedipc` and the `namedipc` script of the Python package.

fn main() {
    std::process::exit(namedipc::cli::main(std::env::args_os()));
}
