//! Storage sizes as Kubernetes writes them (`1Gi`, `500M`, `1073741824`), in bytes, to compare a PVC's
//! capacity with `spec.storage.size`.

/// Bytes of a quantity; `None` for what is not a plain storage quantity.
pub fn bytes(quantity: &str) -> Option<u64> {
    let quantity = quantity.trim();
    let split = quantity
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let multiplier: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    (value >= 0.0).then(|| (value * multiplier as f64).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_quantities_read_as_bytes() {
        for (text, expected) in [
            ("1Gi", Some(1 << 30)),
            ("100Mi", Some(100 << 20)),
            ("1.5Gi", Some(3 << 29)),
            ("500M", Some(500_000_000)),
            ("1073741824", Some(1 << 30)),
            ("2k", Some(2000)),
            ("1Xi", None),
            ("", None),
            ("-1Gi", None),
        ] {
            assert_eq!(bytes(text), expected, "{text}");
        }
    }
}
