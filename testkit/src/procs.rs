//! Finding processes a test started and must not leave behind, by what
//! they carry: an argument (a temporary directory's path on a command line)
//! or an environment variable inherited from the test (`PUSHSYNC_TEST_MARK`).
//! Linux `/proc` only; a process that cannot be read is skipped.

/// Processes (other than this one) with an argument containing `needle`.
pub fn with_argument(needle: &str) -> Vec<u32> {
    scan(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .ok()
            .is_some_and(|line| {
                line.split(|b| *b == 0)
                    .any(|arg| String::from_utf8_lossy(arg).contains(needle))
            })
    })
}

/// Processes (other than this one) whose environment holds `name=value`.
pub fn with_env(name: &str, value: &str) -> Vec<u32> {
    let wanted = format!("{name}={value}");
    scan(|pid| {
        std::fs::read(format!("/proc/{pid}/environ"))
            .ok()
            .is_some_and(|env| {
                env.split(|b| *b == 0)
                    .any(|entry| entry == wanted.as_bytes())
            })
    })
}

fn scan(matches: impl Fn(u32) -> bool) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me && !is_zombie(*pid) && matches(*pid))
        .collect();
    found.sort_unstable();
    found
}

/// A zombie has exited; only its parent's wait is missing.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after = stat.rsplit_once(')')?.1;
            after.split_whitespace().next().map(|state| state == "Z")
        })
        .unwrap_or(false)
}

/// A child process that is killed and reaped when this is dropped, on
/// every path (an early `?` included).
#[derive(Debug)]
pub struct Reaped(pub std::process::Child);

impl Reaped {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
