//! The routing plan over a fixed candidate list (the end-to-end versions run real processes in
//! `bin/agora/tests/gateway.rs`).

use agora_gateway::{
    directory::Candidate,
    health::HealthBook,
    routing::{plan, NoRoute, Preferences},
};
use agora_types::{Keypair, UNITS_PER_AGR};
use rand::SeedableRng;

fn candidates() -> Vec<Candidate> {
    (1..=3u128)
        .map(|i| Candidate {
            account: Keypair::from_seed(&[i as u8]).account_id(),
            endpoint: format!("http://127.0.0.1:{}", 9000 + i),
            price_in: i * UNITS_PER_AGR / 10,
            price_out: i * UNITS_PER_AGR / 5,
            region: "local".into(),
        })
        .collect()
}

fn prefs(json: &str) -> Preferences {
    serde_json::from_str(json).unwrap()
}

fn order(list: &[Candidate]) -> Vec<u16> {
    list.iter()
        .map(|c| {
            c.endpoint
                .rsplit(':')
                .next()
                .unwrap()
                .parse::<u16>()
                .unwrap()
                - 9000
        })
        .collect()
}

#[test]
fn sorts_filters_and_fallbacks() {
    let all = candidates();
    let health = HealthBook::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut go = |p: &str| plan("m", &all, &prefs(p), &health, &mut rng);
    assert_eq!(order(&go(r#"{"sort": "price"}"#).unwrap()), [1, 2, 3]);
    assert_eq!(
        order(&go(r#"{"sort": "price", "allow_fallbacks": false}"#).unwrap()),
        [1]
    );
    assert_eq!(
        order(&go(r#"{"order": ["http://127.0.0.1:9003"], "sort": "price"}"#).unwrap()),
        [3, 1, 2]
    );
    // Without fallbacks, `order` names everyone who may serve, in that order.
    assert_eq!(
        order(
            &go(r#"{"order": ["http://127.0.0.1:9003", "http://127.0.0.1:9001"], "allow_fallbacks": false}"#)
                .unwrap()
        ),
        [3, 1]
    );
    assert_eq!(
        go(r#"{"order": ["nobody"], "allow_fallbacks": false}"#),
        Err(NoRoute::Excluded("m".into()))
    );
    let only = format!(r#"{{"only": ["{}"]}}"#, all[1].account);
    assert_eq!(order(&go(&only).unwrap()), [2]);
    let ignore = format!(r#"{{"ignore": ["{}"], "sort": "price"}}"#, all[0].account);
    assert_eq!(order(&go(&ignore).unwrap()), [2, 3]);
    assert_eq!(
        order(&go(r#"{"max_price": {"prompt": 0.2}, "sort": "price"}"#).unwrap()),
        [1, 2]
    );
    assert_eq!(
        go(r#"{"max_price": {"completion": 0.1}}"#),
        Err(NoRoute::AboveMaxPrice("m".into()))
    );
    assert_eq!(
        go(r#"{"only": ["nobody"]}"#),
        Err(NoRoute::Excluded("m".into()))
    );
    assert_eq!(
        plan("m", &[], &Preferences::default(), &health, &mut rng),
        Err(NoRoute::NoProvider("m".into()))
    );
}

#[test]
fn unhealthy_providers_are_skipped_until_they_recover() {
    let all = candidates();
    let health = HealthBook::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    health.failure(&all[0].account);
    let planned = plan("m", &all, &prefs(r#"{"sort": "price"}"#), &health, &mut rng).unwrap();
    assert_eq!(order(&planned), [2, 3]);
    for c in &all {
        health.failure(&c.account);
    }
    assert_eq!(
        plan("m", &all, &Preferences::default(), &health, &mut rng),
        Err(NoRoute::AllUnhealthy("m".into()))
    );
    health.probe_ok(&all[2].account);
    let planned = plan("m", &all, &Preferences::default(), &health, &mut rng).unwrap();
    assert_eq!(order(&planned), [3]);
    // A named provider in cooldown is not replaced by another when fallbacks are off.
    let pinned = prefs(r#"{"order": ["http://127.0.0.1:9001"], "allow_fallbacks": false}"#);
    assert_eq!(
        plan("m", &all, &pinned, &health, &mut rng),
        Err(NoRoute::AllUnhealthy("m".into()))
    );
}

#[test]
fn default_weighting_prefers_the_cheap_by_inverse_square_price() {
    let all = candidates();
    let health = HealthBook::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut first = [0u32; 3];
    for _ in 0..3000 {
        let planned = plan("m", &all, &Preferences::default(), &health, &mut rng).unwrap();
        assert_eq!(
            planned.len(),
            3,
            "every healthy provider stays as a fallback"
        );
        first[order(&planned)[0] as usize - 1] += 1;
    }
    // Weights 1 : 1/4 : 1/9 → shares of about 73%, 18%, 8%.
    let share = |n: u32| f64::from(n) / 3000.0;
    assert!((share(first[0]) - 0.735).abs() < 0.05, "{first:?}");
    assert!((share(first[1]) - 0.184).abs() < 0.05, "{first:?}");
    assert!((share(first[2]) - 0.082).abs() < 0.05, "{first:?}");
}
