//! The `c1m` binary: everything lives in the library; this only hands the
//! process arguments to the command dispatcher and turns its result into an
//! exit status.
fn main() -> std::process::ExitCode {
    c1m::commands::main()
}
