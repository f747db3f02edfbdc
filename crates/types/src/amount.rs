//! Amounts of AGR in base units, with arithmetic that fails instead of wrapping.

/// An amount of AGR in base units.
pub type Amount = u128;

/// Base units in one AGR.
pub const UNITS_PER_AGR: Amount = 1_000_000_000;

/// Basis points in one whole (100%).
pub const BPS_DENOMINATOR: u32 = 10_000;

/// Why an amount computation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The result is larger than `u128::MAX`.
    #[error("amount overflow")]
    Overflow,
    /// The result would be negative.
    #[error("amount underflow")]
    Underflow,
    /// The text is not a decimal AGR amount with at most nine fractional digits.
    #[error("invalid amount text")]
    Parse,
}

/// `a + b`, failing on overflow.
pub fn add(a: Amount, b: Amount) -> Result<Amount, Error> {
    a.checked_add(b).ok_or(Error::Overflow)
}

/// `a - b`, failing when `b > a`.
pub fn sub(a: Amount, b: Amount) -> Result<Amount, Error> {
    a.checked_sub(b).ok_or(Error::Underflow)
}

/// `a * b`, failing on overflow.
pub fn mul(a: Amount, b: Amount) -> Result<Amount, Error> {
    a.checked_mul(b).ok_or(Error::Overflow)
}

/// `amount * bps / 10_000`, rounded down; never overflows.
pub fn fraction_bps(amount: Amount, bps: u32) -> Amount {
    let bps = Amount::from(bps.min(BPS_DENOMINATOR));
    let denominator = Amount::from(BPS_DENOMINATOR);
    // Split so the product stays below u128::MAX for every amount.
    (amount / denominator) * bps + (amount % denominator) * bps / denominator
}

/// `a * b / d` rounded down, computed exactly over 256 bits.
///
/// `None` when `d` is zero or the quotient does not fit in a `u128`.
pub fn mul_div(a: Amount, b: Amount, d: Amount) -> Option<Amount> {
    if d == 0 {
        return None;
    }
    if let Some(product) = a.checked_mul(b) {
        return Some(product / d);
    }
    let (high, low) = mul_wide(a, b);
    if high >= d {
        return None;
    }
    // Restoring long division of the 256-bit (high, low) by d, one bit of `low` at a time.
    // The remainder stays below d; when shifting it left overflows 128 bits, the true value
    // is at least 2^128 > d, and the wrapping subtraction gives the right remainder.
    let mut rem = high;
    let mut quotient: u128 = 0;
    for bit in (0..128).rev() {
        let carry = rem >> 127;
        rem = (rem << 1) | ((low >> bit) & 1);
        if carry == 1 || rem >= d {
            rem = rem.wrapping_sub(d);
            quotient |= 1 << bit;
        }
    }
    Some(quotient)
}

/// The full 256-bit product of `a` and `b` as `(high, low)` 128-bit halves.
pub fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    let mask = u128::from(u64::MAX);
    let (a_hi, a_lo) = (a >> 64, a & mask);
    let (b_hi, b_lo) = (b >> 64, b & mask);
    let lo_lo = a_lo * b_lo;
    let lo_hi = a_lo * b_hi;
    let hi_lo = a_hi * b_lo;
    let hi_hi = a_hi * b_hi;
    // Middle column: the upper half of lo_lo plus the lower halves of the cross terms;
    // three values below 2^64 each, so the sum fits in 128 bits.
    let middle = (lo_lo >> 64) + (lo_hi & mask) + (hi_lo & mask);
    let low = (middle << 64) | (lo_lo & mask);
    let high = hi_hi + (lo_hi >> 64) + (hi_lo >> 64) + (middle >> 64);
    (high, low)
}

/// The price of `tokens` tokens at `price_per_million` per million tokens, rounded up.
pub fn cost_per_million(tokens: u64, price_per_million: Amount) -> Result<Amount, Error> {
    let total = mul(Amount::from(tokens), price_per_million)?;
    Ok(total.div_ceil(1_000_000))
}

/// The price of `input` prompt tokens at `price_in` plus `output` completion tokens at
/// `price_out` (both per million tokens), each rounded up: a receipt's charge, and with the
/// request's maximum output a quote.
pub fn token_cost(
    input: u64,
    output: u64,
    price_in: Amount,
    price_out: Amount,
) -> Result<Amount, Error> {
    add(
        cost_per_million(input, price_in)?,
        cost_per_million(output, price_out)?,
    )
}

/// Formats base units as decimal AGR, e.g. `1.5 AGR`.
pub fn format_agr(amount: Amount) -> String {
    let whole = amount / UNITS_PER_AGR;
    let frac = amount % UNITS_PER_AGR;
    if frac == 0 {
        return format!("{whole} AGR");
    }
    let digits = format!("{frac:09}");
    format!("{whole}.{} AGR", digits.trim_end_matches('0'))
}

/// Parses decimal AGR (`"1.5"`, `"2"`, optionally suffixed ` AGR`) into base units.
pub fn parse_agr(text: &str) -> Result<Amount, Error> {
    let text = text.trim();
    let text = text.strip_suffix("AGR").unwrap_or(text).trim();
    let (whole, frac) = match text.split_once('.') {
        Some((whole, frac)) => (whole, frac),
        None => (text, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(frac) || frac.len() > 9 {
        return Err(Error::Parse);
    }
    let whole: Amount = whole.parse().map_err(|_| Error::Parse)?;
    let mut frac_units: Amount = 0;
    for (idx, digit) in frac.bytes().enumerate() {
        let place = 10u128.pow(8 - idx as u32);
        frac_units += Amount::from(digit - b'0') * place;
    }
    add(mul(whole, UNITS_PER_AGR)?, frac_units)
}
