fn main() -> std::process::ExitCode {
    ctiport_sim::cli::main()
}
