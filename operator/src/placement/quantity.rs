//! Kubernetes resource quantities ("1500m", "8Gi", "1e9") in ECS units: CPU units (1024 per
//! core) and MiB.

/// Parses a quantity into its value as an f64 (cores for cpu, bytes for memory).
pub fn parse(q: &str) -> Option<f64> {
    let q = q.trim();
    if q.is_empty() {
        return None;
    }
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let base: f64 = num.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        "Pi" => 1024.0f64.powi(5),
        "Ei" => 1024.0f64.powi(6),
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    Some(base * factor)
}

/// CPU quantity to ECS CPU units (1 core = 1024 units), rounded down.
pub fn cpu_units(q: &str) -> Option<i64> {
    parse(q).map(|cores| (cores * 1024.0 + 1e-9).floor() as i64)
}

/// Memory quantity to MiB, rounded down.
pub fn mebibytes(q: &str) -> Option<i64> {
    parse(q).map(|bytes| (bytes / (1024.0 * 1024.0) + 1e-9).floor() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities_become_cpu_units() {
        assert_eq!(cpu_units("2"), Some(2048));
        assert_eq!(cpu_units("1500m"), Some(1536));
        assert_eq!(cpu_units("250m"), Some(256));
        assert_eq!(cpu_units("0.5"), Some(512));
        assert_eq!(cpu_units("abc"), None);
    }

    #[test]
    fn memory_quantities_become_mebibytes() {
        assert_eq!(mebibytes("8Gi"), Some(8192));
        assert_eq!(mebibytes("512Mi"), Some(512));
        assert_eq!(mebibytes("1048576Ki"), Some(1024));
        assert_eq!(mebibytes("1e9"), Some(953));
        assert_eq!(mebibytes("1G"), Some(953));
        assert_eq!(mebibytes(""), None);
    }
}
