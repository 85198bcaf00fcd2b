//! How one scalar is spelled in text, and the exact conversions behind `value`'s type
//! rules: booleans, hex bytes, timestamps (via arrow's RFC 3339 parser), epoch
//! milliseconds in a column's unit, and exact decimals. Pure functions over `&str` and
//! numbers; knows nothing of builders, columns or messages beyond a `Fail` reason.

use std::fmt::{self, Write as _};

use arrow::compute::kernels::cast_utils::string_to_datetime;
use arrow::datatypes::TimeUnit;
use chrono::{DateTime, Utc};

/// Why a value did not fit, beyond "wrong type"; becomes a note after the message.
#[derive(Debug, PartialEq)]
pub(super) enum Fail {
    Type,
    Scale,
    Precision,
    Range,
}

pub(super) fn parse_bool(t: &str) -> Option<bool> {
    const TRUE: [&str; 3] = ["true", "t", "1"];
    const FALSE: [&str; 3] = ["false", "f", "0"];
    if TRUE.iter().any(|w| t.eq_ignore_ascii_case(w)) {
        Some(true)
    } else if FALSE.iter().any(|w| t.eq_ignore_ascii_case(w)) {
        Some(false)
    } else {
        None
    }
}

/// Hex digit pairs, optionally after `\x`, into `out`; false if `s` is not that.
pub(super) fn decode_hex(s: &str, out: &mut Vec<u8>) -> bool {
    fn nibble(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let digits = s.strip_prefix("\\x").unwrap_or(s).as_bytes();
    out.clear();
    if !digits.len().is_multiple_of(2) {
        return false;
    }
    for pair in digits.chunks_exact(2) {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
            _ => return false,
        }
    }
    true
}

/// RFC 3339-ish text (arrow's parser: offsets, `T` or space, up to nanoseconds, no
/// offset = UTC) or integer epoch milliseconds, in `unit`.
pub(super) fn parse_timestamp(t: &str, unit: TimeUnit) -> Result<i64, Fail> {
    if let Ok(ms) = t.parse::<i64>() {
        return millis_to_unit(ms, unit).ok_or(Fail::Range);
    }
    let dt: DateTime<Utc> = string_to_datetime(&Utc, t).map_err(|_| Fail::Type)?;
    match unit {
        TimeUnit::Second => Some(dt.timestamp()),
        TimeUnit::Millisecond => Some(dt.timestamp_millis()),
        TimeUnit::Microsecond => Some(dt.timestamp_micros()),
        TimeUnit::Nanosecond => dt.timestamp_nanos_opt(),
    }
    .ok_or(Fail::Range)
}

pub(super) fn millis_to_unit(ms: i64, unit: TimeUnit) -> Option<i64> {
    match unit {
        TimeUnit::Second => Some(ms.div_euclid(1000)),
        TimeUnit::Millisecond => Some(ms),
        TimeUnit::Microsecond => ms.checked_mul(1_000),
        TimeUnit::Nanosecond => ms.checked_mul(1_000_000),
    }
}

/// Exact decimal text (`-12.50`, `+3`, `.5`; no exponent) as an unscaled DECIMAL(p,s).
/// Trailing zeros after the point never count against the scale.
pub(super) fn parse_decimal(t: &str, precision: u8, scale: u8) -> Result<i128, Fail> {
    let (negative, unsigned) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return Err(Fail::Type);
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > scale as usize {
        return Err(Fail::Scale);
    }
    let mut v: i128 = 0;
    for d in int.bytes().chain(frac.bytes()) {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add((d - b'0').into()))
            .ok_or(Fail::Precision)?;
    }
    let v = scale_decimal(v, frac.len() as u8, precision, scale)?;
    Ok(if negative { -v } else { v })
}

/// `v` with `digits` digits after the point, rescaled to `scale` and checked against
/// `precision` (both at most 38, so the powers of ten fit an i128).
pub(super) fn scale_decimal(v: i128, digits: u8, precision: u8, scale: u8) -> Result<i128, Fail> {
    let scaled = v
        .checked_mul(10i128.pow(u32::from(scale - digits)))
        .ok_or(Fail::Precision)?;
    match scaled.unsigned_abs() < 10u128.pow(u32::from(precision)) {
        true => Ok(scaled),
        false => Err(Fail::Precision),
    }
}

/// A JSON float as an unscaled DECIMAL(p,s). Rust prints an f64 as its shortest
/// round-trip decimal and never with an exponent, so the parse sees the digits the user
/// wrote (`12.34`, not `12.339999…`). Anything longer than the stack buffer cannot fit a
/// DECIMAL(38,s) anyway.
pub(super) fn decimal_from_f64(v: f64, precision: u8, scale: u8) -> Result<i128, Fail> {
    let mut text = StackStr::default();
    match write!(text, "{v}") {
        Ok(()) => parse_decimal(text.as_str(), precision, scale),
        Err(_) if v.abs() >= 1.0 => Err(Fail::Precision),
        Err(_) => Err(Fail::Scale),
    }
}

/// A fixed buffer for formatting a number without a heap allocation.
struct StackStr {
    buf: [u8; 64],
    len: usize,
}

impl Default for StackStr {
    fn default() -> Self {
        StackStr {
            buf: [0; 64],
            len: 0,
        }
    }
}

impl StackStr {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dest = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dest.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal("0", 1, 0), Ok(0));
        assert_eq!(parse_decimal("-0.50", 3, 2), Ok(-50));
        assert_eq!(parse_decimal("+5.", 3, 2), Ok(500));
        assert_eq!(parse_decimal("007.10", 3, 2), Ok(710));
        assert_eq!(parse_decimal("1.005", 3, 2), Err(Fail::Scale));
        assert_eq!(parse_decimal("10.0", 3, 2), Err(Fail::Precision));
        assert_eq!(parse_decimal("-", 3, 2), Err(Fail::Type));
        assert_eq!(parse_decimal("1 ", 3, 2), Err(Fail::Type));
        let huge = "9".repeat(60);
        assert_eq!(parse_decimal(&huge, 38, 0), Err(Fail::Precision));
        assert_eq!(decimal_from_f64(0.1, 38, 38), Ok(10i128.pow(37)));
        assert_eq!(decimal_from_f64(-2.5, 2, 1), Ok(-25));
        assert_eq!(decimal_from_f64(1e-10, 38, 10), Ok(1));
        assert_eq!(decimal_from_f64(1e-11, 38, 10), Err(Fail::Scale));
    }

    #[test]
    fn hex_and_bools() {
        let mut out = Vec::new();
        assert!(decode_hex("DEADbeef", &mut out));
        assert_eq!(out, [0xde, 0xad, 0xbe, 0xef]);
        assert!(!decode_hex("\\x0", &mut out));
        assert!(!decode_hex("0g", &mut out));
        assert!(!decode_hex("é0", &mut out));
        assert_eq!(parse_bool("T"), Some(true));
        assert_eq!(parse_bool("no"), None);
    }

    #[test]
    fn epoch_millis_in_each_unit() {
        assert_eq!(millis_to_unit(-1, TimeUnit::Second), Some(-1));
        assert_eq!(millis_to_unit(1999, TimeUnit::Second), Some(1));
        assert_eq!(millis_to_unit(2, TimeUnit::Microsecond), Some(2_000));
        assert_eq!(millis_to_unit(i64::MAX, TimeUnit::Nanosecond), None);
        assert_eq!(
            parse_timestamp("1970-01-01T00:00:01+00:00", TimeUnit::Nanosecond),
            Ok(1_000_000_000)
        );
        assert_eq!(parse_timestamp("soon", TimeUnit::Second), Err(Fail::Type));
    }
}
