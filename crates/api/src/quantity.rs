//! Kubernetes quantities (`1Gi`, `500M`, `1e9`, `+2E`) read exactly, in bytes: the grammar the API
//! server's `isQuantity` admits, so that every size a RedisCluster is admitted with can be acted on.

/// A quantity the parser cannot read as a whole number of bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {value:?}: {reason}")]
pub struct QuantityError {
    pub value: String,
    pub reason: &'static str,
}

/// A quantity in bytes, rounded up to a whole byte like `resource.Quantity.Value()`. Accepts the
/// Kubernetes quantity grammar: a decimal number with a binary (`Ki`..`Ei`), decimal (`n`..`E`) or
/// exponent (`e3`) suffix. Negative sizes and values beyond u128 are rejected.
pub fn bytes(text: &str) -> Result<u128, QuantityError> {
    let text = text.trim();
    let invalid = |reason| QuantityError {
        value: text.to_owned(),
        reason,
    };
    let unsigned = match text.as_bytes().first() {
        Some(b'-') => return Err(invalid("negative size")),
        Some(b'+') => &text[1..],
        _ => text,
    };
    let number_len = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(invalid("malformed number"));
    }
    let (exp2, suffix_exp10) = suffix_exponents(suffix).ok_or_else(|| invalid("unknown suffix"))?;
    let mut mantissa: u128 = 0;
    for digit in whole.bytes().chain(fraction.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(digit - b'0')))
            .ok_or_else(|| invalid("too large"))?;
    }
    let fraction_digits = i32::try_from(fraction.len()).map_err(|_| invalid("too long"))?;
    let exp10 = suffix_exp10 - fraction_digits;
    let too_large = || invalid("too large");
    let mut numerator = mantissa
        .checked_mul(1u128.checked_shl(exp2).ok_or_else(too_large)?)
        .ok_or_else(too_large)?;
    if exp10 >= 0 {
        let scale = 10u128.checked_pow(exp10.unsigned_abs()).ok_or_else(too_large)?;
        numerator = numerator.checked_mul(scale).ok_or_else(too_large)?;
        Ok(numerator)
    } else {
        match 10u128.checked_pow(exp10.unsigned_abs()) {
            Some(denominator) => Ok(numerator.div_ceil(denominator)),
            // Below one byte but above zero rounds up to one.
            None => Ok(u128::from(numerator > 0)),
        }
    }
}

/// (power of two, power of ten) of a quantity suffix.
fn suffix_exponents(suffix: &str) -> Option<(u32, i32)> {
    let binary = |p| Some((p, 0));
    let decimal = |p| Some((0, p));
    match suffix {
        "" => decimal(0),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        _ => {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            decimal(exponent.parse().ok()?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(text: &str) -> u128 {
        match bytes(text) {
            Ok(b) => b,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn binary_and_decimal_suffixes_scale_to_bytes() {
        assert_eq!(b("1Gi"), 1 << 30);
        assert_eq!(b("2Gi"), 2 << 30);
        assert_eq!(b("1.5Gi"), 3 << 29);
        assert_eq!(b("512Mi"), 512 << 20);
        assert_eq!(b("1Ki"), 1024);
        assert_eq!(b("1Ei"), 1 << 60);
        assert_eq!(b("1G"), 1_000_000_000);
        assert_eq!(b("1k"), 1000);
        assert_eq!(b("3E"), 3_000_000_000_000_000_000);
        assert_eq!(b("1073741824"), 1 << 30);
        assert_eq!(b("+5"), 5);
        assert_eq!(b(".5k"), 500);
    }

    #[test]
    fn exponent_suffix_is_a_power_of_ten_but_capital_e_alone_is_exa() {
        assert_eq!(b("1e3"), 1000);
        assert_eq!(b("2E6"), 2_000_000);
        assert_eq!(b("1e+3"), 1000);
        assert_eq!(b("1E"), 1_000_000_000_000_000_000);
    }

    #[test]
    fn fractions_of_a_byte_round_up() {
        assert_eq!(b("1500m"), 2);
        assert_eq!(b("1n"), 1);
        assert_eq!(b("0"), 0);
        assert_eq!(b("0.1"), 1);
        assert_eq!(b("1e-100"), 1);
    }

    #[test]
    fn malformed_or_negative_quantities_are_rejected() {
        for bad in [
            "", "Gi", "1Xi", "-1Gi", "1..2", "1.2.3", "1e", "1e+", "abc", "1 Gi",
        ] {
            assert!(bytes(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(bytes("1e40").is_err());
    }

    #[test]
    fn equal_sizes_in_different_units_compare_equal() {
        assert_eq!(b("1Gi"), b("1024Mi"));
        assert_eq!(b("1Gi"), b("1073741824"));
        assert!(b("1G") < b("1Gi"));
    }
}
