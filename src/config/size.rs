//! Sizes written as text: `"64"` (in the key's default unit), `"256MiB"`, `"500m"`, `"1.5GB"`.
//! Binary multiples are used for every unit letter, as dumpling and DM's validator do.

/// Parses a size; a bare number is multiplied by `bare_unit` bytes.
pub fn parse_size(text: &str, bare_unit: u64) -> Result<u64, String> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid size `{text}`: expected a number"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" => bare_unit as f64,
        "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("invalid size `{text}`: unknown unit `{other}`")),
    };
    let bytes = value * mult;
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(format!("invalid size `{text}`: too large"));
    }
    Ok(bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        const MIB: u64 = 1 << 20;
        assert_eq!(parse_size("64", MIB).unwrap(), 64 * MIB);
        assert_eq!(parse_size("256MiB", MIB).unwrap(), 256 * MIB);
        assert_eq!(parse_size("500m", 1).unwrap(), 500 * MIB);
        assert_eq!(parse_size("1.5G", 1).unwrap(), 3 * (1 << 29));
        assert!(parse_size("x", 1).is_err());
        assert!(parse_size("10parsecs", 1).is_err());
    }
}
