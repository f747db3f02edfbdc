//! Block and transaction gossip between validators, next to simplex's own channels.
//!
//! Simplex agrees on digests; the blocks behind them travel here. One channel
//! carries three messages, each a tag byte and a payload:
//!
//! - `BLOCK` + an encoded block: a proposer's new block, a block forwarded to a
//!   lagging peer, or the answer to a `WANT`;
//! - `WANT` + a 32-byte block hash: "send me this block", sent for blocks that
//!   verification or execution found missing. The answer is the block and up to
//!   127 of its ancestors (8 MiB at most), newest first, so a node that was
//!   offline walks back from the newest finalized block to its own head in a few
//!   round trips rather than one per block;
//! - `TX` + transactions accepted by the sender's mempool, each a little-endian
//!   `u32` length and the encoded transaction, so a transaction submitted to any
//!   node reaches every leader;
//! - `WANT_END` + a little-endian `u64` validator-set epoch: "how did this epoch
//!   end?", sent every two seconds for the node's own epoch. Peers that have
//!   moved past it answer with `END` + the epoch + the encoded finalization
//!   certificate of the block that ended it. A node that was offline when the set
//!   changed (its engine's peers are gone) checks the certificate against its
//!   set, treats the block as finalized, fetches it and its ancestors with
//!   `WANT`s, executes them and so reaches the new set.
//!
//! A peer whose message does not decode, or whose block does not match its own
//! transaction root, is blocked through the network's [`Blocker`], and so is a leader
//! whose proposal fails verification (a wrong state root, for one).

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use commonware_cryptography::{blake3::Digest, ed25519::PublicKey};
use commonware_macros::select;
use commonware_p2p::{Blocker, Receiver, Recipients, Sender};
use commonware_runtime::{Clock, IoBuf};
use futures::{channel::mpsc, StreamExt as _};
use rand_core::CryptoRng;
use tracing::{debug, warn};

use super::App;

const BLOCK: u8 = 0;
const WANT: u8 = 1;
const TX: u8 = 2;
const WANT_END: u8 = 3;
const END: u8 = 4;

/// Size at which a `TX` message is cut (a transaction is at most 64 KiB).
const MAX_GOSSIP_TX_BYTES: usize = 1 << 20;

/// The largest message on the gossip channel: a block of the most bytes a block may have.
pub(crate) const MAX_MESSAGE_BYTES: usize = agora_types::MAX_BLOCK_BYTES + 1;

/// How often missing blocks and fresh transactions are sent out.
const TICK: Duration = Duration::from_millis(50);
/// How often transactions still waiting in the mempool are passed on again.
const RESEND: Duration = Duration::from_secs(2);
/// Most blocks sent in answer to one `WANT` (the block and its ancestors).
const WANT_ANCESTRY: usize = 128;
/// Most bytes sent in answer to one `WANT`.
const WANT_ANCESTRY_BYTES: usize = 8 << 20;
/// How long before a missing block is asked for again.
const WANT_RETRY: Duration = Duration::from_millis(500);

/// Where a block goes.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// To every peer (a new proposal).
    All(Digest),
    /// To some peers (simplex forwarding a certified block to laggards).
    Some(Digest, Vec<PublicKey>),
    /// Not a block: a leader whose proposal failed verification, to block.
    Penalize(PublicKey),
}

/// Why an incoming message was refused; the sender is blocked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Invalid {
    /// The message was empty or carried an unknown tag.
    #[error("unknown message tag")]
    Tag,
    /// A `WANT` whose payload is not 32 bytes, or a `WANT_END` not 8.
    #[error("want of {0} bytes")]
    Want(usize),
    /// The block or transaction did not decode or was inconsistent.
    #[error("{0}")]
    Payload(String),
}

/// Encodes a `BLOCK` message.
fn block_message(block: &[u8]) -> Vec<u8> {
    tagged(BLOCK, block)
}

fn tagged(tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(payload.len() + 1);
    message.push(tag);
    message.extend_from_slice(payload);
    message
}

/// Runs the gossip loop until the receiver closes.
pub(crate) async fn run<E, S, R, B, A>(
    mut clock: E,
    app: A,
    (mut sender, mut receiver): (S, R),
    mut blocker: B,
    mut outbound: mpsc::UnboundedReceiver<Outbound>,
) where
    E: Clock + CryptoRng,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
    B: Blocker<PublicKey = PublicKey>,
    A: App,
{
    let mut asked: HashMap<Digest, SystemTime> = HashMap::new();
    let mut resent = clock.current();
    // A deadline, not a fresh sleep per message: steady traffic must not starve the tick.
    let mut tick = clock.current() + TICK;
    loop {
        select! {
            incoming = receiver.recv() => {
                let Ok((peer, message)) = incoming else {
                    debug!(target: "agora::chain", "gossip channel closed");
                    return;
                };
                // A parent revealed by an arriving block is asked for on the next tick: it is
                // usually already on its way, in the same answer as its child.
                match handle(&app, &mut sender, &peer, &message, &mut clock) {
                    Ok(()) => {}
                    Err(err) => {
                        warn!(target: "agora::chain", %peer, %err, "blocking peer for an invalid message");
                        let _ = blocker.block(peer);
                    }
                }
            },
            out = outbound.next() => {
                let Some(out) = out else { return };
                let (digest, recipients) = match out {
                    Outbound::All(digest) => (digest, Recipients::All),
                    Outbound::Some(digest, peers) => (digest, Recipients::Some(peers)),
                    Outbound::Penalize(peer) => {
                        warn!(target: "agora::chain", %peer, "blocking a leader whose proposal is invalid");
                        let _ = blocker.block(peer);
                        continue;
                    }
                };
                if let Some(bytes) = app.ancestry(&digest, 1, usize::MAX).pop() {
                    sender.send(recipients, IoBuf::from(block_message(&bytes)), true);
                }
            },
            _ = clock.sleep_until(tick) => {
                let now = clock.current();
                tick = now + TICK;
                ask_missing(&app, &mut sender, &mut asked, now);
                let again = now.duration_since(resent).unwrap_or_default() >= RESEND;
                if again {
                    resent = now;
                    if let Some(set) = app.validator_set() {
                        let want = tagged(WANT_END, &set.epoch.to_le_bytes());
                        sender.send(Recipients::All, IoBuf::from(want), false);
                    }
                }
                for batch in tx_batches(app.outgoing_txs(again)) {
                    sender.send(Recipients::All, IoBuf::from(batch), false);
                }
            },
        }
    }
}

/// Sends a `WANT` for each missing block not asked for within [`WANT_RETRY`].
fn ask_missing<A: App, S: Sender<PublicKey = PublicKey>>(
    app: &A,
    sender: &mut S,
    asked: &mut HashMap<Digest, SystemTime>,
    now: SystemTime,
) {
    let missing = app.missing();
    asked.retain(|digest, _| missing.contains(digest));
    for digest in missing {
        let due = asked
            .get(&digest)
            .is_none_or(|at| now.duration_since(*at).unwrap_or_default() >= WANT_RETRY);
        if due {
            asked.insert(digest, now);
            sender.send(Recipients::All, IoBuf::from(tagged(WANT, &digest.0)), false);
        }
    }
}

fn handle<A: App, S: Sender<PublicKey = PublicKey>>(
    app: &A,
    sender: &mut S,
    peer: &PublicKey,
    message: &IoBuf,
    rng: &mut impl CryptoRng,
) -> Result<(), Invalid> {
    let bytes: &[u8] = message.as_ref();
    let (&tag, payload) = bytes.split_first().ok_or(Invalid::Tag)?;
    match tag {
        BLOCK => app.receive_block(payload),
        WANT => {
            let hash: [u8; 32] = payload
                .try_into()
                .map_err(|_| Invalid::Want(payload.len()))?;
            // A node missing one block usually misses its parents too: send them along,
            // newest first, so each arrives as the one the asker wants next.
            for block in app.ancestry(&Digest(hash), WANT_ANCESTRY, WANT_ANCESTRY_BYTES) {
                sender.send(
                    Recipients::One(peer.clone()),
                    IoBuf::from(block_message(&block)),
                    false,
                );
            }
            Ok(())
        }
        TX => {
            let mut rest = payload;
            while !rest.is_empty() {
                let (len, tail) = rest
                    .split_first_chunk::<4>()
                    .ok_or_else(|| Invalid::Payload("truncated transaction length".into()))?;
                let len = u32::from_le_bytes(*len) as usize;
                if len > tail.len() {
                    return Err(Invalid::Payload("truncated transaction".into()));
                }
                let (tx, tail) = tail.split_at(len);
                app.receive_tx(tx)?;
                rest = tail;
            }
            Ok(())
        }
        WANT_END => {
            let epoch: [u8; 8] = payload
                .try_into()
                .map_err(|_| Invalid::Want(payload.len()))?;
            if let Some(certificate) = app.epoch_end(u64::from_le_bytes(epoch)) {
                let answer = [&epoch[..], &certificate].concat();
                sender.send(
                    Recipients::One(peer.clone()),
                    IoBuf::from(tagged(END, &answer)),
                    false,
                );
            }
            Ok(())
        }
        END => {
            let (epoch, certificate) = payload
                .split_first_chunk::<8>()
                .ok_or_else(|| Invalid::Payload("truncated epoch end".into()))?;
            let epoch = u64::from_le_bytes(*epoch);
            let Some(set) = app.validator_set() else {
                return Ok(());
            };
            // Only the end of this node's own epoch is news (and checkable).
            if set.epoch != epoch {
                return Ok(());
            }
            let payload = super::check_finalization(&set, certificate, rng).ok_or_else(|| {
                Invalid::Payload(format!("epoch {epoch} end certificate does not verify"))
            })?;
            debug!(target: "agora::chain", epoch, ?payload, "a peer proved how this epoch ended");
            app.finalized(payload, epoch, certificate.to_vec());
            Ok(())
        }
        _ => Err(Invalid::Tag),
    }
}

/// `TX` messages carrying `txs`, each under [`MAX_GOSSIP_TX_BYTES`].
fn tx_batches(txs: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut batches = Vec::new();
    let mut batch = vec![TX];
    for tx in txs {
        if batch.len() + 4 + tx.len() > MAX_GOSSIP_TX_BYTES && batch.len() > 1 {
            batches.push(std::mem::replace(&mut batch, vec![TX]));
        }
        let len = u32::try_from(tx.len()).unwrap_or(u32::MAX);
        batch.extend_from_slice(&len.to_le_bytes());
        batch.extend_from_slice(&tx);
    }
    if batch.len() > 1 {
        batches.push(batch);
    }
    batches
}
