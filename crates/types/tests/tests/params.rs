use agora_types::{params::PARAM_NAMES, Params};

#[test]
fn every_named_param_can_be_read_and_set() {
    let mut params = Params::default();
    params.validate().unwrap();
    for name in PARAM_NAMES {
        let value = params.get(name).unwrap();
        params.set(name, value).unwrap();
    }
    params.set("min_fee", 7).unwrap();
    assert_eq!(params.min_fee, 7);
}

#[test]
fn unknown_and_out_of_range_params_are_refused_and_change_nothing() {
    let mut params = Params::default();
    let before = params.clone();
    assert!(params.set("nope", 1).is_err());
    assert!(params.set("quorum_bps", 10_001).is_err());
    assert!(params.set("voting_period_blocks", 0).is_err());
    assert!(params.set("unbonding_blocks", u128::MAX).is_err());
    assert!(params.set("dispute_committee_size", 0).is_err());
    assert!(params.set("dispute_committee_size", 65).is_err());
    assert!(params.set("dispute_period_blocks", 0).is_err());
    assert!(params.set("challenger_reward_bps", 10_001).is_err());
    assert!(params.set("verifier_reward_bps", 10_001).is_err());
    assert_eq!(params, before);
}
