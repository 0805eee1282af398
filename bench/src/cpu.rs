//! CPU time from `/proc`, for figures per operation.

/// User plus system CPU seconds this process has used.
pub fn own_seconds() -> f64 {
    seconds_of("/proc/self/stat")
}

/// User plus system CPU seconds of the process whose `stat` file is
/// `stat_path` (NaN when it cannot be read).
pub fn seconds_of(stat_path: &str) -> f64 {
    // Fields 14 and 15 (utime, stime) in clock ticks; the command name in
    // field 2 may contain spaces, so count from its closing parenthesis.
    let Ok(stat) = std::fs::read_to_string(stat_path) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // After ")" the state is index 0, so utime (field 14) is index 11.
    (ticks(11) + ticks(12)) / 100.0
}
