//! Genesis, block application and mempool checks.

use std::collections::BTreeSet;

use agora_types::{
    amount, block::tx_root, domain, encoding::encode, keys::verify_batch, signing::signing_bytes,
    AccountId, Block, ChainId, Genesis, Hash, Params, SignedTx, TxBody, MAX_TX_BYTES,
};

use crate::{
    bank, channels, disputes,
    error::{Error, Fail, TxError},
    events::Event,
    governance, proof, receipts, registry, scores, staking,
    state::{
        keys, load_account, load_meta, load_stake, read_required, save_account, save_stake,
        update_supply, write, Meta, Model, ModelStatus, Provider, Supply, Validator, ValidatorSet,
    },
    storage::{write_changes, Overlay, Storage},
    validators,
};

/// Signatures verified together in one batch; a failed batch falls back to one by one.
const BATCH_SIZE: usize = 64;

/// What applying a block did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutcome {
    /// The block's height.
    pub height: u64,
    /// The block's hash (its header's hash).
    pub block_hash: Hash,
    /// The state root after this block: the `state_root` the next header must carry.
    pub state_root: Hash,
    /// One outcome per transaction, in block order.
    pub txs: Vec<TxOutcome>,
    /// End-of-block events: governance tallies, dispute verdicts, epoch rewards.
    pub events: Vec<Event>,
}

/// What one transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOutcome {
    /// The transaction's hash.
    pub hash: Hash,
    /// `Ok`, or why it failed or was rejected (see [`TxError::is_rejection`]).
    pub result: Result<(), TxError>,
    /// Fee burned: the transaction's fee, or zero when rejected.
    pub fee_paid: agora_types::Amount,
    /// Events, empty unless it succeeded.
    pub events: Vec<Event>,
}

/// What a transaction handler works with.
pub(crate) struct Ctx<'a> {
    /// The transaction's overlay.
    pub(crate) store: &'a mut dyn Storage,
    /// The block's height.
    pub(crate) height: u64,
    /// Parameters as of the start of the block.
    pub(crate) params: &'a Params,
    /// The chain id.
    pub(crate) chain_id: &'a ChainId,
    /// The transaction's nonce.
    pub(crate) nonce: u64,
    /// Events so far.
    pub(crate) events: Vec<Event>,
}

/// Writes the genesis state into empty storage and returns the initial state root.
///
/// The returned root is the `state_root` block 1's header must carry; block 1's `parent` is
/// [`Genesis::hash`].
pub fn init_genesis(storage: &mut dyn Storage, genesis: &Genesis) -> Result<Hash, Error> {
    if storage.get(keys::META)?.is_some() {
        return Err(Error::AlreadyInitialized);
    }
    let invalid = |msg: String| Error::InvalidGenesis(msg);
    genesis
        .params
        .validate()
        .map_err(|err| invalid(err.to_string()))?;
    let params = &genesis.params;
    let mut overlay = Overlay::new(&*storage);
    let mut supply = Supply::default();
    let overflow = |_| invalid("amounts overflow".to_string());

    let mut seen = BTreeSet::new();
    for (id, balance) in &genesis.accounts {
        if !seen.insert(*id) {
            return Err(invalid(format!("account {id} is listed twice")));
        }
        let mut account = load_account(&overlay, id)?;
        account.balance = *balance;
        save_account(&mut overlay, id, &account)?;
        supply.liquid = amount::add(supply.liquid, *balance).map_err(overflow)?;
    }

    let mut bond = |overlay: &mut Overlay<'_>, id: &AccountId, stake: u128| -> Result<(), Error> {
        let mut record = load_stake(overlay, id)?;
        record.bonded = amount::add(record.bonded, stake).map_err(overflow)?;
        save_stake(overlay, id, &record)?;
        supply.bonded = amount::add(supply.bonded, stake).map_err(overflow)?;
        Ok(())
    };

    let mut validators = Vec::new();
    let mut seen = BTreeSet::new();
    for validator in &genesis.validators {
        if !seen.insert(validator.account) {
            return Err(invalid(format!(
                "validator {} is listed twice",
                validator.account
            )));
        }
        bond(&mut overlay, &validator.account, validator.stake)?;
        let record = Validator {
            account: validator.account,
            p2p: None,
        };
        write(&mut overlay, &keys::validator(&validator.account), &record)?;
        validators.push(record);
    }
    validators.sort_by_key(|validator| validator.account);

    let mut seen = BTreeSet::new();
    for info in &genesis.models {
        if !seen.insert(info.cid) {
            return Err(invalid(format!("model {} is listed twice", info.cid)));
        }
        let model = Model {
            info: info.clone(),
            status: ModelStatus::Active,
            updated_height: 0,
        };
        write(&mut overlay, &keys::model(&info.cid), &model)?;
    }

    let mut seen = BTreeSet::new();
    for provider in &genesis.providers {
        if !seen.insert(provider.operator) {
            return Err(invalid(format!(
                "provider {} is listed twice",
                provider.operator
            )));
        }
        bond(&mut overlay, &provider.operator, provider.stake)?;
        if load_stake(&overlay, &provider.operator)?.bonded < params.min_stake {
            return Err(invalid(format!(
                "provider {} has less than min_stake bonded",
                provider.operator
            )));
        }
        if let Err(err) = registry::validate_info(&overlay, &provider.info) {
            let msg = match err {
                Fail::Tx(err) => err.to_string(),
                Fail::Fatal(err) => return Err(err),
            };
            return Err(invalid(format!("provider {}: {msg}", provider.operator)));
        }
        let record = Provider {
            operator: provider.operator,
            info: provider.info.clone(),
            registered_height: 0,
        };
        write(&mut overlay, &keys::provider(&provider.operator), &record)?;
    }

    supply.genesis = supply
        .liquid
        .checked_add(supply.bonded)
        .ok_or_else(|| invalid("amounts overflow".to_string()))?;
    let genesis_hash = genesis.hash();
    let meta = Meta {
        chain_id: genesis.chain_id.clone(),
        height: 0,
        last_block_hash: genesis_hash,
        timestamp_ms: genesis.timestamp_ms,
        genesis_hash,
        next_proposal_id: 0,
    };
    write(&mut overlay, keys::META, &meta)?;
    write(&mut overlay, keys::PARAMS, params)?;
    write(&mut overlay, keys::SUPPLY, &supply)?;
    let set = ValidatorSet {
        epoch: 0,
        floor: None,
        members: validators,
    };
    write(&mut overlay, keys::VALIDATORS, &set)?;
    let changes = overlay.into_changes();
    write_changes(storage, changes)?;
    let root = proof::compute_state_root(storage)?;
    storage.put(keys::STATE_ROOT, &root.0)?;
    Ok(root)
}

/// Checks a block's header against the current state without applying it.
///
/// A node runs this before voting for a proposal: height, parent, timestamp, state root,
/// tx root and transaction count must all match.
pub fn check_header(storage: &dyn Storage, block: &Block) -> Result<(), Error> {
    let meta = load_meta(storage)?;
    let params: Params = read_required(storage, keys::PARAMS)?;
    check_header_against(storage, &meta, &params, block)
}

fn check_header_against(
    storage: &dyn Storage,
    meta: &Meta,
    params: &Params,
    block: &Block,
) -> Result<(), Error> {
    let header = &block.header;
    let expected_height = meta.height.saturating_add(1);
    if header.height != expected_height {
        return Err(Error::Height {
            expected: expected_height,
            got: header.height,
        });
    }
    if header.parent != meta.last_block_hash {
        return Err(Error::Parent {
            expected: meta.last_block_hash,
            got: header.parent,
        });
    }
    if header.timestamp_ms < meta.timestamp_ms {
        return Err(Error::Timestamp {
            parent: meta.timestamp_ms,
            got: header.timestamp_ms,
        });
    }
    let count = block.txs.len() as u64;
    if count > params.max_block_txs {
        return Err(Error::TooManyTxs {
            max: params.max_block_txs,
            got: count,
        });
    }
    let root = proof::state_root(storage)?;
    if header.state_root != root {
        return Err(Error::StateRoot {
            expected: root,
            got: header.state_root,
        });
    }
    let txs_root = tx_root(&block.txs);
    if header.tx_root != txs_root {
        return Err(Error::TxRoot {
            expected: txs_root,
            got: header.tx_root,
        });
    }
    Ok(())
}

/// Applies a finalized block: checks its header, runs its transactions in order, settles
/// proposals whose voting ends at this height, and returns the new state root.
///
/// On `Err`, nothing was written unless the error is [`Error::Storage`]; callers should
/// write through a storage transaction they commit only on `Ok`.
/// A transaction that fails is still included: its fee is burned, its nonce advances, and
/// nothing else changes.
/// A transaction that is not properly signed, has the wrong nonce or cannot pay its fee is
/// rejected and changes nothing at all.
pub fn apply_block(storage: &mut dyn Storage, block: &Block) -> Result<BlockOutcome, Error> {
    let meta = load_meta(storage)?;
    let params: Params = read_required(storage, keys::PARAMS)?;
    check_header_against(storage, &meta, &params, block)?;
    let height = block.header.height;
    let prepared = prepare(&meta.chain_id, &block.txs);

    let mut overlay = Overlay::new(&*storage);
    let mut outcomes = Vec::with_capacity(block.txs.len());
    for (tx, prep) in block.txs.iter().zip(prepared) {
        let env = Env {
            height,
            params: &params,
            chain_id: &meta.chain_id,
        };
        outcomes.push(execute_tx(&mut overlay, &env, tx, prep)?);
    }
    let mut events = governance::end_block(&mut overlay, height)?;
    events.extend(disputes::end_block(&mut overlay, height)?);
    events.extend(scores::end_block(&mut overlay, height)?);
    events.extend(validators::end_block(
        &mut overlay,
        height,
        &block.header.parent,
    )?);

    let block_hash = block.header.hash();
    let mut meta = load_meta(&overlay)?;
    meta.height = height;
    meta.last_block_hash = block_hash;
    meta.timestamp_ms = block.header.timestamp_ms;
    write(&mut overlay, keys::META, &meta)?;

    let changes = overlay.into_changes();
    write_changes(storage, changes)?;
    let state_root = proof::compute_state_root(storage)?;
    storage.put(keys::STATE_ROOT, &state_root.0)?;
    Ok(BlockOutcome {
        height,
        block_hash,
        state_root,
        txs: outcomes,
        events,
    })
}

/// Mempool admission: size, signature for this chain, nonce not already used, fee at least
/// `min_fee` and affordable.
///
/// A nonce above the next one is accepted (the transaction may wait for its predecessors).
pub fn check_tx(storage: &dyn Storage, tx: &SignedTx) -> Result<(), TxError> {
    let unavailable = |_| TxError::NotInitialized;
    let meta = load_meta(storage).map_err(unavailable)?;
    let params: Params = read_required(storage, keys::PARAMS).map_err(unavailable)?;
    let len = encode(tx).len();
    if len > MAX_TX_BYTES {
        return Err(TxError::TooLarge {
            len,
            max: MAX_TX_BYTES,
        });
    }
    if tx.verify(&meta.chain_id).is_err() {
        return Err(TxError::BadSignature);
    }
    let account = load_account(storage, &tx.signer).map_err(unavailable)?;
    if tx.nonce < account.nonce {
        return Err(TxError::BadNonce {
            expected: account.nonce,
            got: tx.nonce,
        });
    }
    if tx.fee < params.min_fee {
        return Err(TxError::FeeTooLow {
            min: params.min_fee,
            got: tx.fee,
        });
    }
    if account.balance < tx.fee {
        return Err(TxError::CannotPayFee {
            balance: account.balance,
            fee: tx.fee,
        });
    }
    Ok(())
}

/// Block-wide inputs to every transaction.
struct Env<'a> {
    height: u64,
    params: &'a Params,
    chain_id: &'a ChainId,
}

/// A transaction's hash and, when it must be rejected before execution, why.
struct Prepared {
    hash: Hash,
    rejection: Option<TxError>,
}

/// Hashes every transaction, checks sizes and verifies signatures in batches.
fn prepare(chain_id: &ChainId, txs: &[SignedTx]) -> Vec<Prepared> {
    let mut prepared = Vec::with_capacity(txs.len());
    let mut signed = Vec::with_capacity(txs.len());
    for tx in txs {
        let bytes = encode(tx);
        let hash = Hash::of(&bytes);
        if bytes.len() > MAX_TX_BYTES {
            prepared.push(Prepared {
                hash,
                rejection: Some(TxError::TooLarge {
                    len: bytes.len(),
                    max: MAX_TX_BYTES,
                }),
            });
            signed.push(None);
            continue;
        }
        // The signature is the encoding's last 64 bytes, and what it signs is everything
        // before it (signer, nonce, fee, body), so the signed message is a prefix of the
        // bytes already hashed.
        let message = &bytes[..bytes.len() - 64];
        signed.push(Some(signing_bytes(domain::TX, chain_id, message)));
        prepared.push(Prepared {
            hash,
            rejection: None,
        });
    }
    let indices: Vec<usize> = (0..txs.len())
        .filter(|&idx| signed[idx].is_some())
        .collect();
    for chunk in indices.chunks(BATCH_SIZE) {
        let items: Vec<(AccountId, &[u8], agora_types::Signature)> = chunk
            .iter()
            .filter_map(|&idx| {
                let message = signed[idx].as_deref()?;
                Some((txs[idx].signer, message, txs[idx].signature))
            })
            .collect();
        if verify_batch(&items) {
            continue;
        }
        for &idx in chunk {
            let Some(message) = signed[idx].as_deref() else {
                continue;
            };
            if txs[idx]
                .signer
                .verify_raw(message, &txs[idx].signature)
                .is_err()
            {
                prepared[idx].rejection = Some(TxError::BadSignature);
            }
        }
    }
    prepared
}

fn execute_tx(
    block: &mut Overlay<'_>,
    env: &Env<'_>,
    tx: &SignedTx,
    prep: Prepared,
) -> Result<TxOutcome, Error> {
    let hash = prep.hash;
    let rejected = |err: TxError| TxOutcome {
        hash,
        result: Err(err),
        fee_paid: 0,
        events: Vec::new(),
    };
    if let Some(err) = prep.rejection {
        return Ok(rejected(err));
    }
    let mut account = load_account(block, &tx.signer)?;
    if tx.nonce != account.nonce || tx.nonce == u64::MAX {
        return Ok(rejected(TxError::BadNonce {
            expected: account.nonce,
            got: tx.nonce,
        }));
    }
    if tx.fee < env.params.min_fee {
        return Ok(rejected(TxError::FeeTooLow {
            min: env.params.min_fee,
            got: tx.fee,
        }));
    }
    if account.balance < tx.fee {
        return Ok(rejected(TxError::CannotPayFee {
            balance: account.balance,
            fee: tx.fee,
        }));
    }
    account.balance -= tx.fee;
    account.nonce += 1;
    save_account(block, &tx.signer, &account)?;
    let fee = tx.fee;
    let charged = update_supply(block, |supply| {
        supply.liquid = amount::sub(supply.liquid, fee)?;
        supply.burned = amount::add(supply.burned, fee)?;
        Ok(())
    });
    match charged {
        Ok(()) => {}
        Err(Fail::Fatal(err)) => return Err(err),
        Err(Fail::Tx(err)) => {
            return Err(Error::SupplyMismatch(format!(
                "charging a fee failed: {err}"
            )))
        }
    }

    let mut overlay = Overlay::new(&*block);
    let mut ctx = Ctx {
        store: &mut overlay,
        height: env.height,
        params: env.params,
        chain_id: env.chain_id,
        nonce: tx.nonce,
        events: Vec::new(),
    };
    let res = dispatch(&mut ctx, tx);
    let events = std::mem::take(&mut ctx.events);
    match res {
        Ok(()) => {
            let changes = overlay.into_changes();
            write_changes(block, changes)?;
            Ok(TxOutcome {
                hash,
                result: Ok(()),
                fee_paid: fee,
                events,
            })
        }
        Err(Fail::Tx(err)) => Ok(TxOutcome {
            hash,
            result: Err(err),
            fee_paid: fee,
            events: Vec::new(),
        }),
        Err(Fail::Fatal(err)) => Err(err),
    }
}

fn dispatch(ctx: &mut Ctx<'_>, tx: &SignedTx) -> Result<(), Fail> {
    let signer = &tx.signer;
    match &tx.body {
        TxBody::Transfer { to, amount } => bank::transfer(ctx, signer, to, *amount),
        TxBody::Bond { amount } => staking::bond(ctx, signer, *amount),
        TxBody::Unbond { amount } => staking::unbond(ctx, signer, *amount),
        TxBody::WithdrawUnbonded => staking::withdraw(ctx, signer),
        TxBody::RegisterProvider(info) => registry::register_provider(ctx, signer, info),
        TxBody::UpdateProvider(info) => registry::update_provider(ctx, signer, info),
        TxBody::DeregisterProvider => registry::deregister_provider(ctx, signer),
        TxBody::RegisterVerifier { endpoint } => registry::register_verifier(ctx, signer, endpoint),
        TxBody::RegisterValidator { p2p } => validators::register(ctx, signer, p2p),
        TxBody::DeregisterValidator => validators::deregister(ctx, signer),
        TxBody::OpenChannel {
            payee,
            deposit,
            expiry_height,
        } => channels::open(ctx, signer, payee, *deposit, *expiry_height),
        TxBody::TopUpChannel {
            channel_id,
            amount,
            expiry_height,
        } => channels::top_up(ctx, signer, channel_id, *amount, *expiry_height),
        TxBody::RedeemChannel { voucher, amount } => {
            channels::redeem(ctx, signer, voucher, *amount)
        }
        TxBody::CloseChannel { channel_id } => channels::close(ctx, signer, channel_id),
        TxBody::CommitReceipts {
            epoch,
            root,
            totals,
            by_model,
        } => receipts::commit(ctx, signer, *epoch, root, totals, by_model),
        TxBody::Challenge {
            receipt,
            transcript,
            bond,
        } => disputes::challenge(ctx, signer, receipt, transcript, *bond),
        TxBody::DisputeVote { dispute_id, fraud } => {
            disputes::vote(ctx, signer, dispute_id, *fraud)
        }
        TxBody::CommitScores { epoch, commitment } => {
            scores::commit(ctx, signer, *epoch, commitment)
        }
        TxBody::RevealScores {
            epoch,
            scores,
            salt,
        } => scores::reveal(ctx, signer, *epoch, scores, salt),
        TxBody::SubmitProposal { kind, deposit } => governance::submit(ctx, signer, kind, *deposit),
        TxBody::VoteProposal { proposal_id, vote } => {
            governance::vote(ctx, signer, *proposal_id, *vote)
        }
    }
}
