//! Pins the wire format: a deterministic sample of every message kind, hashed.
//!
//! If this test fails, the encoding or a signing domain changed.
//! That is a breaking change to every signed message: update the constant only on purpose.

use agora_types::{
    encode, tx_root, AccountId, Block, ChainId, Cid, Genesis, GenesisProvider, GenesisValidator,
    Hash, Header, Keypair, ModelInfo, ModelOffer, Params, ProposalKind, ProviderInfo,
    ProviderScore, Receipt, ReceiptTotals, SamplingParams, SignedTx, TxBody, Vote, Voucher,
};

const PINNED: &str = "4ba8fc78d7066164e2d74a6a251ea3c5e2d369670cb02d6f20bf278a1c56547c";

fn model() -> ModelInfo {
    ModelInfo {
        cid: Cid::of(b"model"),
        name: "SmolLM2-135M-Instruct".try_into().unwrap(),
        architecture: "llama".try_into().unwrap(),
        quantization: "Q4_1".try_into().unwrap(),
        context_length: 8192,
        license: "Apache-2.0".try_into().unwrap(),
        size: 98_362_432,
    }
}

fn info() -> ProviderInfo {
    ProviderInfo {
        endpoint: "https://p.example".try_into().unwrap(),
        models: vec![ModelOffer {
            cid: Cid::of(b"model"),
            price_in: 1,
            price_out: 2,
        }]
        .try_into()
        .unwrap(),
        region: "eu".try_into().unwrap(),
        hardware: "cpu".try_into().unwrap(),
    }
}

fn sample(chain: &ChainId, payer: &Keypair, payee: AccountId) -> Vec<u8> {
    let voucher = Voucher {
        chain_id: chain.clone(),
        channel_id: Hash::of(b"channel"),
        payer: payer.account_id(),
        payee,
        cumulative: 42,
    }
    .sign(payer);
    let receipt = Receipt {
        chain_id: chain.clone(),
        provider: payer.account_id(),
        request_hash: Hash::of(b"req"),
        response_hash: Hash::of(b"resp"),
        model: Cid::of(b"model"),
        prompt_tokens: 10,
        completion_tokens: 20,
        sampling: SamplingParams {
            temperature_milli: 700,
            top_p_milli: 950,
            top_k: 40,
            seed: 7,
        },
        price_in: 3,
        price_out: 4,
        payer: payee,
        voucher_amount: 42,
        timestamp_ms: 1_700_000_000_000,
    }
    .sign(payer);
    let bodies = vec![
        TxBody::Transfer {
            to: payee,
            amount: 1,
        },
        TxBody::Bond { amount: 2 },
        TxBody::Unbond { amount: 3 },
        TxBody::WithdrawUnbonded,
        TxBody::RegisterProvider(info()),
        TxBody::UpdateProvider(info()),
        TxBody::DeregisterProvider,
        TxBody::RegisterVerifier {
            endpoint: "http://127.0.0.1:9000".try_into().unwrap(),
        },
        TxBody::OpenChannel {
            payee,
            deposit: 5,
            expiry_height: 6,
        },
        TxBody::TopUpChannel {
            channel_id: Hash::of(b"channel"),
            amount: 7,
            expiry_height: 8,
        },
        TxBody::RedeemChannel {
            voucher: voucher.clone(),
            amount: 40,
        },
        TxBody::CloseChannel {
            channel_id: Hash::of(b"channel"),
        },
        TxBody::CommitReceipts {
            epoch: 9,
            root: Hash::of(b"root"),
            totals: ReceiptTotals {
                requests: 1,
                tokens_in: 2,
                tokens_out: 3,
                amount: 4,
            },
            by_model: vec![agora_types::ModelTotals {
                model: Cid::of(b"m"),
                totals: ReceiptTotals {
                    requests: 1,
                    tokens_in: 2,
                    tokens_out: 3,
                    amount: 4,
                },
            }]
            .try_into()
            .unwrap(),
        },
        TxBody::Challenge {
            receipt: receipt.clone(),
            transcript: Cid::of(b"t"),
            bond: 10,
        },
        TxBody::DisputeVote {
            dispute_id: Hash::of(b"d"),
            fraud: true,
        },
        TxBody::SubmitProposal {
            kind: ProposalKind::AddModel(model()),
            deposit: 11,
        },
        TxBody::SubmitProposal {
            kind: ProposalKind::ReplaceModel {
                old: Cid::of(b"old"),
                new: model(),
            },
            deposit: 12,
        },
        TxBody::SubmitProposal {
            kind: ProposalKind::RetireModel {
                cid: Cid::of(b"old"),
            },
            deposit: 13,
        },
        TxBody::SubmitProposal {
            kind: ProposalKind::SetParam {
                name: "min_fee".try_into().unwrap(),
                value: 14,
            },
            deposit: 15,
        },
        TxBody::SubmitProposal {
            kind: ProposalKind::SetSafetyPolicy {
                cid: Cid::of(b"policy"),
            },
            deposit: 16,
        },
        TxBody::SubmitProposal {
            kind: ProposalKind::Text {
                text: "hello".try_into().unwrap(),
            },
            deposit: 17,
        },
        TxBody::VoteProposal {
            proposal_id: 18,
            vote: Vote::Abstain,
        },
        TxBody::CommitScores {
            epoch: 19,
            commitment: Hash::of(b"c"),
        },
        TxBody::RevealScores {
            epoch: 20,
            scores: vec![ProviderScore {
                provider: payee,
                score_ppm: 21,
            }]
            .try_into()
            .unwrap(),
            salt: Hash::of(b"salt"),
        },
        TxBody::RegisterValidator {
            p2p: "v.example:26656".try_into().unwrap(),
        },
        TxBody::DeregisterValidator,
    ];
    let txs: Vec<SignedTx> = bodies
        .into_iter()
        .enumerate()
        .map(|(nonce, body)| SignedTx::sign(payer, chain, nonce as u64, 1_000, body))
        .collect();
    let header = Header {
        height: 1,
        parent: Hash::of(b"parent"),
        timestamp_ms: 1_700_000_000_000,
        proposer: payer.account_id(),
        tx_root: tx_root(&txs),
        state_root: Hash::of(b"state"),
    };
    let genesis = Genesis {
        chain_id: chain.clone(),
        timestamp_ms: 1,
        accounts: vec![(payee, 100)],
        validators: vec![GenesisValidator {
            account: payer.account_id(),
            stake: 5,
        }],
        params: Params::default(),
        models: vec![model()],
        providers: vec![GenesisProvider {
            operator: payer.account_id(),
            stake: 6,
            info: info(),
        }],
    };
    let mut out = Vec::new();
    out.extend(encode(&voucher));
    out.extend(encode(&receipt));
    out.extend(encode(&Block { header, txs }));
    out.extend(encode(&genesis));
    out
}

#[test]
fn wire_format_is_pinned() {
    let chain = ChainId::new("agora-wire").unwrap();
    let payer = Keypair::from_seed(b"payer");
    let payee = Keypair::from_seed(b"payee").account_id();
    let bytes = sample(&chain, &payer, payee);
    let digest = Hash::of(&bytes).to_hex();
    assert_eq!(digest, PINNED, "wire format changed; see the module docs");
}

#[test]
fn score_commitment_binds_verifier_epoch_scores_and_salt() {
    let alice = Keypair::from_seed(b"alice").account_id();
    let bob = Keypair::from_seed(b"bob").account_id();
    let scores = [ProviderScore {
        provider: bob,
        score_ppm: 500_000,
    }];
    let salt = Hash::of(b"salt");
    let base = agora_types::score_commitment(&alice, 3, &scores, &salt);
    assert_eq!(
        base,
        agora_types::score_commitment(&alice, 3, &scores, &salt)
    );
    assert_ne!(base, agora_types::score_commitment(&bob, 3, &scores, &salt));
    assert_ne!(
        base,
        agora_types::score_commitment(&alice, 4, &scores, &salt)
    );
    assert_ne!(
        base,
        agora_types::score_commitment(&alice, 3, &scores, &Hash::of(b"other"))
    );
    let other = [ProviderScore {
        provider: bob,
        score_ppm: 500_001,
    }];
    assert_ne!(
        base,
        agora_types::score_commitment(&alice, 3, &other, &salt)
    );
}
