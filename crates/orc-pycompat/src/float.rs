//! `repr(float)`.

use std::fmt::Write as _;

/// Python `float.__repr__`: the shortest digits that read back as the same
/// float, in positional notation for `1e-4 <= |x| < 1e16` (`0.0001`,
/// `1000000000000000.0`) and scientific outside it (`1e-05`, `1e+16`);
/// `inf`, `-inf`, `nan`, `-0.0`.
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let mut out = String::from(if x.is_sign_negative() { "-" } else { "" });
    // Rust's `{:e}` prints the shortest round-trip digits, as Python does.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = usize::try_from(exp + 1).unwrap_or(1);
            match (digits.get(..int_len), digits.get(int_len..)) {
                (Some(head), Some(tail)) if !tail.is_empty() => {
                    out.push_str(head);
                    out.push('.');
                    out.push_str(tail);
                }
                _ => {
                    out.push_str(&digits);
                    out.extend(std::iter::repeat_n(
                        '0',
                        int_len.saturating_sub(digits.len()),
                    ));
                    out.push_str(".0");
                }
            }
        } else {
            out.push_str("0.");
            let zeros = usize::try_from(-exp - 1).unwrap_or(0);
            out.extend(std::iter::repeat_n('0', zeros));
            out.push_str(&digits);
        }
    } else {
        let (head, tail) = digits.split_at(digits.len().min(1));
        out.push_str(head);
        if !tail.is_empty() {
            out.push('.');
            out.push_str(tail);
        }
        push_exponent(&mut out, exp);
    }
    out
}

/// Appends a Python exponent: `e+16`, `e-05` (a sign and at least two digits).
pub fn push_exponent(out: &mut String, exp: i32) {
    let sign = if exp < 0 { '-' } else { '+' };
    let _ = write!(out, "e{sign}{:02}", exp.unsigned_abs());
}

#[cfg(test)]
mod tests {
    use super::float_repr;

    #[test]
    fn thresholds() {
        let cases = [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123.456, "123.456"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (x, want) in cases {
            assert_eq!(float_repr(x), want, "repr of {x}");
        }
    }
}
