//! Byte sizes in settings, written as Kubernetes writes quantities:
//! `1048576`, `512Ki`, `64Mi`, `4Gi`, `1Ti` (powers of 1024) or `500k`,
//! `64M`, `4G` (powers of 1000).

/// Parse a byte size; the error says what is expected.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let invalid = || format!("{text:?} is not a byte size (e.g. 1048576, 512Ki, 64Mi, 4Gi, 500M)");
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    if digits == 0 {
        return Err(invalid());
    }
    let number: u64 = trimmed[..digits].parse().map_err(|_| invalid())?;
    let multiplier: u64 = match &trimmed[digits..] {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return Err(invalid()),
    };
    number.checked_mul(multiplier).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_as_kubernetes_writes_them() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("512Ki"), Ok(512 << 10));
        assert_eq!(parse_bytes(" 4Gi "), Ok(4 << 30));
        assert_eq!(parse_bytes("500M"), Ok(500_000_000));
        for bad in ["", "Gi", "4gb", "1.5Gi", "-1", "99999999999Ti"] {
            let error = parse_bytes(bad).unwrap_err();
            assert!(error.contains("is not a byte size"), "{bad}: {error}");
        }
    }
}
