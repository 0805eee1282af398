//! The one normaliser of repository-relative paths (Application paths,
//! `pushsync.dev/paths` extras, symlink targets, Helm values files): `.`
//! and empty segments dropped, `..` resolved, and a path that climbs above
//! the root refused rather than clamped, so `../../etc` never quietly
//! becomes `etc`.

/// `path` resolved within the root (no leading or trailing `/`; `""` is the
/// root itself); `None` when a `..` climbs above the root.
pub fn normalise(path: &str) -> Option<String> {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            other => segments.push(other),
        }
    }
    Some(segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_inside_the_root_and_climbing_out_is_refused() {
        for (path, expected) in [
            ("", Some("")),
            ("/", Some("")),
            ("./a//b/../c/", Some("a/c")),
            ("apps/web/../common", Some("apps/common")),
            ("a/..", Some("")),
            ("..", None),
            ("../../etc", None),
            ("a/../../etc", None),
            ("/a/./b", Some("a/b")),
        ] {
            assert_eq!(normalise(path).as_deref(), expected, "{path:?}");
        }
    }
}
