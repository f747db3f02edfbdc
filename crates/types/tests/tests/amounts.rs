use agora_types::amount::{
    add, cost_per_million, format_agr, fraction_bps, mul, parse_agr, sub, Error,
};
use agora_types::UNITS_PER_AGR;

#[test]
fn arithmetic_fails_instead_of_wrapping() {
    assert_eq!(add(u128::MAX, 1), Err(Error::Overflow));
    assert_eq!(sub(1, 2), Err(Error::Underflow));
    assert_eq!(mul(u128::MAX, 2), Err(Error::Overflow));
    assert_eq!(add(2, 3), Ok(5));
}

#[test]
fn fraction_bps_rounds_down_and_never_overflows() {
    assert_eq!(fraction_bps(1_000, 1_000), 100);
    assert_eq!(fraction_bps(9_999, 1), 0);
    assert_eq!(fraction_bps(u128::MAX, 10_000), u128::MAX);
    assert_eq!(fraction_bps(u128::MAX, 20_000), u128::MAX);
}

#[test]
fn cost_per_million_rounds_up() {
    assert_eq!(cost_per_million(1, 1), Ok(1));
    assert_eq!(cost_per_million(1_000_000, 5), Ok(5));
    assert_eq!(cost_per_million(0, 5), Ok(0));
    assert_eq!(cost_per_million(u64::MAX, u128::MAX), Err(Error::Overflow));
}

#[test]
fn agr_text_round_trips() {
    assert_eq!(format_agr(UNITS_PER_AGR * 3 / 2), "1.5 AGR");
    assert_eq!(format_agr(2 * UNITS_PER_AGR), "2 AGR");
    assert_eq!(format_agr(1), "0.000000001 AGR");
    assert_eq!(parse_agr("1.5"), Ok(UNITS_PER_AGR * 3 / 2));
    assert_eq!(parse_agr("2 AGR"), Ok(2 * UNITS_PER_AGR));
    assert_eq!(parse_agr("0.000000001"), Ok(1));
    for bad in ["", ".5", "1.0000000001", "-1", "1e9", "abc"] {
        assert_eq!(parse_agr(bad), Err(Error::Parse), "{bad}");
    }
}

#[test]
fn mul_div_is_exact_where_the_product_overflows_u128() {
    use agora_types::amount::{mul_div, mul_wide};
    assert_eq!(mul_wide(u128::MAX, u128::MAX), (u128::MAX - 1, 1));
    assert_eq!(mul_wide(1 << 64, 1 << 64), (1, 0));
    assert_eq!(mul_div(u128::MAX, u128::MAX, u128::MAX), Some(u128::MAX));
    assert_eq!(mul_div(u128::MAX, 3, 4), Some(u128::MAX / 4 * 3 + 2));
    assert_eq!(mul_div(1 << 127, 4, 8), Some(1 << 126));
    assert_eq!(
        mul_div(u128::MAX, 1_000_000, 3_000_000),
        Some(u128::MAX / 3)
    );
    assert_eq!(mul_div(u128::MAX, 2, 1), None);
    assert_eq!(mul_div(5, 5, 0), None);
    assert_eq!(mul_div(7, 3, 2), Some(10));
}

proptest::proptest! {
    #[test]
    fn mul_div_agrees_with_u128_and_undoes_itself(a in proptest::prelude::any::<u128>(), b in 1u128.., small in proptest::prelude::any::<u64>()) {
        use agora_types::amount::mul_div;
        // Within u128 it is plain arithmetic.
        let (x, y) = (u128::from(small), u128::from(small / 3 + 1));
        proptest::prop_assert_eq!(mul_div(x, y, b), Some(x * y / b));
        // (a * b) / b == a, across the 256-bit range.
        proptest::prop_assert_eq!(mul_div(a, b, b), Some(a));
        // Scaling by a fraction below one never exceeds the original.
        let half = b / 2;
        proptest::prop_assert!(mul_div(a, half, b).unwrap() <= a);
    }
}
