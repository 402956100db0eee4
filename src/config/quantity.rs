//! Kubernetes resource quantities (`100m`, `0.5`, `64Mi`, `1G`, `2e3`), parsed with the grammar of
//! apimachinery's `resource.Quantity`. The proxy's requests and limits are copied into every proxied
//! pod, so a value the API server would refuse must stop the webhook at startup rather than refuse
//! those pods one by one.

/// A non-negative quantity as a whole number of thousandths of its unit. Precision finer than a
/// thousandth is rounded up, as the API server does (`0.1m` is `1m`), so two quantities compare as
/// the API server compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity {
    millis: u128,
}

/// More significant digits than this cannot be held exactly; no real request or limit has them.
const MAX_DIGITS: usize = 38;

/// `<sign><digits>[.<digits>]<suffix>`, the suffix one of `Ki Mi Gi Ti Pi Ei` (powers of 1024),
/// `n u m k M G T P E` or none (powers of 1000), or `e<exponent>`/`E<exponent>` (powers of 10).
/// Negative values are refused: requests and limits cannot be negative.
pub fn parse(value: &str) -> Result<Quantity, String> {
    if value.is_empty() {
        return Err("it is empty".into());
    }
    let unsigned = value.strip_prefix('+').unwrap_or(value);
    if unsigned.starts_with('-') {
        return Err("it is negative".into());
    }
    let number_len = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.contains('.') {
        return Err("it has more than one decimal point".into());
    }
    if whole.is_empty() && fraction.is_empty() {
        return Err("it does not start with a number".into());
    }
    let (power_of_ten, power_of_two) = suffix_powers(suffix)?;

    let whole = whole.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > MAX_DIGITS {
        return Err(format!("it has more than {MAX_DIGITS} significant digits"));
    }
    let mantissa: u128 = if digits.is_empty() {
        0
    } else {
        digits
            .parse()
            .map_err(|_| "it does not start with a number".to_owned())?
    };
    let too_large = || "it is too large".to_owned();
    let scaled = mantissa
        .checked_mul(1u128.checked_shl(power_of_two).ok_or_else(too_large)?)
        .ok_or_else(too_large)?;
    // value = scaled × 10^(power_of_ten − fraction digits); thousandths add 3.
    let fraction_digits = i64::try_from(fraction.len()).map_err(|_| too_large())?;
    let exponent = i64::from(power_of_ten) - fraction_digits + 3;
    let millis = if exponent >= 0 {
        let factor = u32::try_from(exponent)
            .ok()
            .and_then(|e| 10u128.checked_pow(e))
            .ok_or_else(too_large)?;
        scaled.checked_mul(factor).ok_or_else(too_large)?
    } else {
        match u32::try_from(-exponent)
            .ok()
            .and_then(|e| 10u128.checked_pow(e))
        {
            Some(divisor) => scaled.div_ceil(divisor),
            // The divisor exceeds any u128, so a non-zero value rounds up to one thousandth.
            None => u128::from(scaled > 0),
        }
    };
    Ok(Quantity { millis })
}

/// `(power of ten, power of two)` that `suffix` multiplies the number by.
fn suffix_powers(suffix: &str) -> Result<(i32, u32), String> {
    let powers = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        _ => {
            let exponent = suffix
                .strip_prefix(['e', 'E'])
                .filter(|e| {
                    let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
                })
                .ok_or_else(|| {
                    format!(
                        "the suffix {suffix:?} is not one of Ki, Mi, Gi, Ti, Pi, Ei, n, u, m, k, M, G, \
                         T, P, E or an exponent such as e3"
                    )
                })?;
            let exponent: i32 = exponent
                .parse()
                .map_err(|_| format!("the exponent in {suffix:?} is out of range"))?;
            (exponent, 0)
        }
    };
    Ok(powers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(value: &str) -> Result<u128, String> {
        parse(value).map(|q| q.millis)
    }

    #[test]
    fn valid_quantities_in_thousandths() {
        let cases: &[(&str, u128)] = &[
            ("0", 0),
            ("0m", 0),
            ("1", 1_000),
            ("+1", 1_000),
            ("100m", 100),
            ("0.5", 500),
            ("1.5", 1_500),
            (".5", 500),
            ("5.", 5_000),
            ("0.1m", 1),
            ("1n", 1),
            ("1500u", 2),
            ("2k", 2_000_000),
            ("1M", 1_000_000_000),
            ("1G", 1_000_000_000_000),
            ("64Mi", 64 * 1024 * 1024 * 1000),
            ("1.5Gi", 1536 * 1024 * 1024 * 1000),
            ("1Ki", 1_024_000),
            ("1Ei", (1u128 << 60) * 1000),
            ("1E", 1_000_000_000_000_000_000_000),
            ("2e3", 2_000_000),
            ("2E3", 2_000_000),
            ("5e-1", 500),
            ("1e+2", 100_000),
            ("1e-30", 1),
            ("007", 7_000),
            ("1.000000000000000000000000000000000000000000", 1_000),
        ];
        for (raw, want) in cases {
            assert_eq!(millis(raw), Ok(*want), "{raw}");
        }
    }

    #[test]
    fn invalid_quantities_say_why() {
        let cases = [
            ("", "empty"),
            ("-1", "negative"),
            ("-100m", "negative"),
            ("+-1", "negative"),
            ("abc", "does not start with a number"),
            ("Mi", "does not start with a number"),
            (".", "does not start with a number"),
            ("1.2.3", "more than one decimal point"),
            ("1mi", "suffix \"mi\""),
            ("1 Mi", "suffix \" Mi\""),
            (" 1", "does not start with a number"),
            ("1m ", "suffix \"m \""),
            ("1KB", "suffix \"KB\""),
            ("1e", "suffix \"e\""),
            ("1e+", "suffix \"e+\""),
            ("1e1.5", "suffix \"e1.5\""),
            ("1e99999999999", "out of range"),
            ("1e40", "too large"),
            ("99999999999999999999999999999999999999Ei", "too large"),
            (
                "1234567890123456789012345678901234567890",
                "significant digits",
            ),
        ];
        for (raw, reason) in cases {
            let msg = millis(raw).err().unwrap_or_default();
            assert!(msg.contains(reason), "{raw:?}: {msg:?}");
        }
    }

    #[test]
    fn compares_across_suffixes() {
        let q = |raw: &str| parse(raw).map_err(|e| format!("{raw}: {e}"));
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1Ki"), q("1024"));
        assert!(q("1Gi") > q("1G"));
        assert!(q("500m") < q("0.6"));
        assert!(q("100Mi") > q("100M"));
    }
}
