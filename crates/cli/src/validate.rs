//! `ctiport validate <bundle | dir>`: ctiport's own checks, one bundle file at a time.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ctiport_transform::validate::{Problem, check_bundle_file};

pub fn run(path: &Path) -> ExitCode {
    let files = match bundle_files(path) {
        Ok(files) if !files.is_empty() => files,
        Ok(_) => {
            eprintln!("ctiport: no bundle files in {}", path.display());
            return ExitCode::from(2);
        }
        Err(error) => {
            eprintln!("ctiport: cannot read {}: {error}", path.display());
            return ExitCode::from(2);
        }
    };
    let mut problems = 0usize;
    for file in &files {
        let found = match check_bundle_file(file) {
            Ok(found) => found,
            Err(error) => vec![Problem {
                id: "bundle".into(),
                message: error,
            }],
        };
        for problem in &found {
            println!("{}: {}: {}", file.display(), problem.id, problem.message);
        }
        if found.is_empty() {
            println!("{}: ok", file.display());
        }
        problems += found.len();
    }
    println!("{} file(s), {problems} problem(s)", files.len());
    ExitCode::from(if problems == 0 { 0 } else { 1 })
}

fn bundle_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    Ok(files)
}
