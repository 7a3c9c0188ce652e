pub fn run(_p: &std::path::Path) -> std::process::ExitCode {
    std::process::ExitCode::from(0)
}
