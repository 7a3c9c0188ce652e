//! `ctiport validate <bundle | dir>`: ctiport's own checks, one bundle file at a time.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::fs::File;
use std::io::BufReader;

use ctiport_fetch::collection::{Flow, read_optional_array_member};
use ctiport_transform::validate::{BundleIndex, Problem, check_envelope, check_object};

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
        let found = match check_file(file) {
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

/// Two streaming passes over one bundle file: the first indexes the ids, the second checks each
/// object against them. Memory grows with the number of ids, never with the file.
fn check_file(file: &Path) -> Result<Vec<Problem>, String> {
    let open = || {
        File::open(file)
            .map(|f| BufReader::with_capacity(256 * 1024, f))
            .map_err(|e| e.to_string())
    };
    let mut index = BundleIndex::default();
    let envelope = read_optional_array_member(open()?, "objects", &mut |object| {
        index.add(&object);
        Flow::Continue
    })
    .map_err(|e| format!("not a readable bundle: {e}"))?;
    let mut problems = check_envelope(&envelope.scalars);
    let mut position = 0usize;
    read_optional_array_member(open()?, "objects", &mut |object| {
        problems.extend(check_object(&object, position, &index));
        position += 1;
        Flow::Continue
    })
    .map_err(|e| format!("not a readable bundle: {e}"))?;
    problems.extend(index.problems());
    Ok(problems)
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
