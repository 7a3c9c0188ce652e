// Tests may unwrap (a panic there is a failing test) and spell out their fixtures' types.
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)
)]
fn main() -> std::process::ExitCode {
    ctiport_sim::cli::main()
}
