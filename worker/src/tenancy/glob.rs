//! The patterns Projects are written with: `*` matches any run of
//! characters within one `/`-separated segment, `**` any run across
//! segments, `?` one character other than `/`; everything else matches
//! itself. No character classes, no escapes: fewer ways to be surprised.

/// Whether `text` matches `pattern` as a whole.
pub fn matches(pattern: &str, text: &str) -> bool {
    // Namespaces, kinds and repository identities are ASCII: match their
    // bytes without allocating; anything else by characters.
    if pattern.is_ascii() && text.is_ascii() {
        return run(pattern.as_bytes(), text.as_bytes(), [b'*', b'?', b'/']);
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    run(&pattern, &text, ['*', '?', '/'])
}

/// The matcher over any symbols; `[star, any, slash]` name the special ones.
fn run<T: Copy + PartialEq>(pattern: &[T], text: &[T], [star, any, slash]: [T; 3]) -> bool {
    // Iterative matching with two backtracking points, the last `*` and the
    // last `**` (a `*` that cannot grow hands over to the `**` before it):
    // no recursion, whatever the pattern.
    let (mut p, mut t) = (0, 0);
    let mut single: Option<(usize, usize)> = None;
    let mut across: Option<(usize, usize)> = None;
    while t < text.len() {
        if pattern.get(p) == Some(&star) {
            if pattern.get(p + 1) == Some(&star) {
                p += 2;
                across = Some((p, t));
                single = None;
            } else {
                p += 1;
                single = Some((p, t));
            }
            continue;
        }
        if let Some(&c) = pattern.get(p)
            && (c == text[t] || (c == any && text[t] != slash))
        {
            p += 1;
            t += 1;
            continue;
        }
        // Let the last star swallow one more character and retry from there.
        if let Some((after, from)) = single
            && text[from] != slash
        {
            single = Some((after, from + 1));
            (p, t) = (after, from + 1);
        } else if let Some((after, from)) = across {
            single = None;
            across = Some((after, from + 1));
            (p, t) = (after, from + 1);
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == star)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_stay_within_a_segment_and_double_stars_cross() {
        let cases = [
            ("*", "team-a", true),
            ("*", "", true),
            ("team-a", "team-a", true),
            ("team-a", "team-ab", false),
            ("team-a-*", "team-a-dev", true),
            ("team-a-*", "team-b-dev", false),
            ("team-?", "team-a", true),
            ("team-?", "team-ab", false),
            ("github.com/acme/*", "github.com/acme/web", true),
            ("github.com/acme/*", "github.com/acme/web/sub", false),
            ("github.com/acme/*", "github.com/acme-evil/web", false),
            ("github.com/acme/**", "github.com/acme/group/sub/web", true),
            ("github.com/*/web", "github.com/x/web", true),
            ("github.com/*/web", "github.com/x/y/web", false),
            ("*/web", "evil.tld/x/web", false),
            ("**", "anything/at/all", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("*.apps", "deployments.apps", true),
            ("", "", true),
            ("", "x", false),
            ("**/x/*", "a/x/b/x/c", true),
            ("**/x/*", "a/x/b/y/c", false),
            ("équipe-*", "équipe-a", true),
            ("équipe-?", "équipe-ab", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(matches(pattern, text), expected, "{pattern:?} ~ {text:?}");
        }
    }

    #[test]
    fn a_hostile_pattern_costs_little() {
        let text = "a".repeat(2_000);
        let pattern = format!("{}b", "*a".repeat(200));
        assert!(!matches(&pattern, &text));
    }
}
