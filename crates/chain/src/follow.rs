//! Followers: full nodes that are not validators.
//!
//! A follower (`agora node --follow URL`) takes no part in consensus. It asks the node
//! it follows for the newest certified block of its own validator-set epoch
//! (`GET /sync/finality/{epoch}`, a [`Finality`]), checks the certificate against the
//! validator set of its own executed state, fetches the blocks from its head up to that
//! block (`GET /sync/blocks/{from}/{to}`) and executes them. Execution walks the hash
//! chain back from the certified block, and the ledger checks every header's parent and
//! state root, so a followed node that lies (a forged certificate, blocks off the
//! certified chain) moves the follower nowhere. When the set changes, the certified
//! block of the follower's epoch is the one that ended it; executing it brings the
//! follower into the next epoch.
//!
//! The follower serves the same RPC as any node; `submit_tx` is passed on to the node it
//! follows. `URL` may name several nodes, comma-separated, tried in turn.

use std::{sync::Arc, time::Duration};

use agora_types::Block;
use commonware_runtime::{Clock, Runner as _};
use rand_core::CryptoRng;
use tracing::{debug, info, warn};

use crate::{
    consensus::{self, App as _},
    node::Node,
    sync::{Finality, MAX_FINALITY_BYTES, MAX_SYNC_BYTES},
    Error,
};

/// Wait between rounds when there was nothing new.
const POLL: Duration = Duration::from_millis(100);
/// Wait after a failed round.
const RETRY: Duration = Duration::from_secs(1);
/// How long fetched blocks may take to execute before the round counts as failed.
const EXECUTE_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the follow loop on its own thread.
pub(crate) fn spawn(node: Arc<Node>) -> Result<std::thread::JoinHandle<()>, Error> {
    Ok(std::thread::Builder::new()
        .name("agora-follow".to_owned())
        .spawn(move || {
            let runner = commonware_runtime::tokio::Runner::new(
                commonware_runtime::tokio::Config::new().with_worker_threads(1),
            );
            runner.start(|context| run(context, node));
        })?)
}

async fn run<E: Clock + CryptoRng>(mut context: E, node: Arc<Node>) {
    let Some(client) = node.upstream().cloned() else {
        return;
    };
    info!(target: "agora::chain", upstream = %client.url(), "following");
    loop {
        let wait = match step(&node, &client, &mut context).await {
            Ok(true) => Duration::ZERO,
            Ok(false) => POLL,
            Err(reason) => {
                warn!(target: "agora::chain", %reason, "follow round failed");
                RETRY
            }
        };
        let stopped = node.wait_stopped();
        futures::pin_mut!(stopped);
        let slept = context.sleep(wait);
        futures::pin_mut!(slept);
        if let futures::future::Either::Left(_) = futures::future::select(stopped, slept).await {
            return;
        }
    }
}

/// One round; `Ok(true)` when the node executed new blocks.
async fn step<E: Clock + CryptoRng>(
    node: &Arc<Node>,
    client: &agora_rpc::Client,
    context: &mut E,
) -> Result<bool, String> {
    let set = node
        .validator_set()
        .ok_or("the validator set cannot be read")?;
    let head = node.head();
    let Some(bytes) = client
        .sync_finality(set.epoch, MAX_FINALITY_BYTES)
        .await
        .map_err(|err| err.to_string())?
    else {
        return Ok(false);
    };
    let finality = Finality::from_bytes(&bytes).map_err(|err| err.to_string())?;
    if finality.epoch != set.epoch {
        return Err(format!(
            "asked for epoch {} and got epoch {}",
            set.epoch, finality.epoch
        ));
    }
    if finality.height <= head.height {
        return Ok(false);
    }
    let Some(tip) = consensus::check_finalization(&set, &finality.certificate, context) else {
        return Err(format!(
            "the certificate for height {} does not verify against epoch {}'s validators",
            finality.height, set.epoch
        ));
    };
    let mut from = head.height + 1;
    while from <= finality.height {
        let bytes = client
            .sync_blocks(from, finality.height, MAX_SYNC_BYTES + MAX_SYNC_BYTES / 8)
            .await
            .map_err(|err| err.to_string())?;
        let blocks: Vec<Block> = agora_types::encoding::decode_bounded(&bytes, usize::MAX)
            .map_err(|err| format!("blocks from {from}: {err}"))?;
        let contiguous = blocks
            .iter()
            .enumerate()
            .all(|(i, block)| block.header.height == from + i as u64);
        if blocks.is_empty() || !contiguous {
            return Err(format!("blocks from {from} are missing or out of order"));
        }
        node.store_fetched(&blocks).map_err(|err| err.to_string())?;
        from += blocks.len() as u64;
    }
    debug!(target: "agora::chain", height = finality.height, "executing to a certified block");
    node.finalized(tip, finality.epoch, finality.certificate);
    let start = context.current();
    while node.head().height < finality.height {
        if let Some(reason) = node.fatal() {
            return Err(reason);
        }
        if node.stopping() {
            return Ok(false);
        }
        if context.current().duration_since(start).unwrap_or_default() > EXECUTE_TIMEOUT {
            return Err(format!(
                "the blocks fetched do not chain to the certified block at height {}",
                finality.height
            ));
        }
        context.sleep(Duration::from_millis(10)).await;
    }
    Ok(true)
}
