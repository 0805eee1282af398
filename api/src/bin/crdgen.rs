//! Print the Application CRD: `cargo run -p pushsync-api --bin crdgen > deploy/crds/application.yaml`.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    match pushsync_api::crd_yaml() {
        Ok(yaml) => {
            if std::io::stdout().write_all(yaml.as_bytes()).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("crdgen: {error}");
            ExitCode::FAILURE
        }
    }
}
