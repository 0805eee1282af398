//! Write the CRDs: `cargo run -p pushsync-api --bin crdgen -- deploy/crds`
//! writes one file per CRD there; without an argument, prints them all as
//! one YAML stream.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = std::env::args_os().nth(1).map(PathBuf::from);
    let mut stream = String::new();
    for (file, crd) in pushsync_api::crds() {
        let yaml = match pushsync_api::crd_yaml(&crd) {
            Ok(yaml) => yaml,
            Err(error) => {
                eprintln!("crdgen: {file}: {error}");
                return ExitCode::FAILURE;
            }
        };
        match &dir {
            Some(dir) => {
                let path = dir.join(file);
                if let Err(error) = std::fs::write(&path, yaml) {
                    eprintln!("crdgen: cannot write {}: {error}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            None => {
                stream.push_str("---\n");
                stream.push_str(&yaml);
            }
        }
    }
    if dir.is_none() && std::io::stdout().write_all(stream.as_bytes()).is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
