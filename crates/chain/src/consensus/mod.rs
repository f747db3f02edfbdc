//! Consensus: Commonware simplex BFT ordering the node's blocks.
//!
//! The engine agrees on block digests; the node ([`App`]) builds, stores and
//! executes the blocks behind them. A block is durably stored by the node
//! before its digest is handed to consensus, so every digest consensus can
//! finalize has its contents on disk, and a node killed at any moment finds
//! every finalized block again on restart.
//!
//! # Pacing
//!
//! Simplex starts the next view as soon as the previous one is notarized, which
//! with one validator takes microseconds. The proposer therefore waits until
//! `min_block_interval` has passed since the parent's timestamp, and, when the
//! mempool is empty, until `max_idle_interval` has passed (an empty heartbeat
//! block), whichever comes first after a transaction arrives.

mod application;
pub(crate) mod gossip;
pub(crate) mod network;

use std::time::Duration;

use commonware_consensus::{
    simplex::{self, elector::RoundRobin},
    types::{Epoch, ViewDelta},
};
use commonware_cryptography::{
    blake3::{Blake3, Digest},
    ed25519, Signer as _,
};
use commonware_p2p::{Blocker, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::{buffer::paged::CacheRef, Clock, Handle, Metrics, Spawner, Storage};
use commonware_utils::{ordered::Set, NZDuration, NZUsize, NZU16};
use rand_core::CryptoRng;

pub(crate) use application::Application;

/// Namespace for consensus signatures; changing it is a breaking change.
pub(crate) const NAMESPACE: &[u8] = b"agora-chain-consensus-v1";

/// What consensus needs from the node.
///
/// Methods that touch storage block; consensus calls them from blocking tasks.
pub(crate) trait App: Clone + Send + Sync + 'static {
    /// Number of transactions waiting in the mempool.
    fn pending(&self) -> usize;

    /// Timestamp (ms since the Unix epoch) of the block with this digest, if known.
    fn timestamp(&self, digest: &Digest) -> Option<u64>;

    /// Builds a block on `parent`, stores it durably and returns its digest.
    ///
    /// With `speculate` false, the node may answer [`Build::Wait`] while the
    /// parent is still being executed; with `speculate` true it must build,
    /// executing unexecuted ancestors speculatively if needed.
    fn build(&self, parent: Digest, timestamp_ms: u64, speculate: bool) -> Build;

    /// Checks a block proposed by `leader`: it extends `parent`, names its proposer, and
    /// executes (with its ancestors not executed yet) to the state root it claims.
    ///
    /// Returns `None` while the block or an ancestor is not known locally (the node then
    /// lists it in [`App::missing`]).
    fn verify(
        &self,
        parent: Digest,
        payload: Digest,
        leader: &ed25519::PublicKey,
        now_ms: u64,
    ) -> Option<bool>;

    /// Consensus finalized `payload` (and with it all its ancestors).
    fn finalized(&self, payload: Digest);

    /// The encoded block with this digest and then its ancestors, newest first, up to
    /// `max` blocks or `max_bytes` in all (always the first block if the node has it).
    fn ancestry(&self, digest: &Digest, max: usize, max_bytes: usize) -> Vec<Vec<u8>>;

    /// A block from a peer; an error blocks the peer.
    fn receive_block(&self, bytes: &[u8]) -> Result<(), gossip::Invalid>;

    /// A transaction from a peer's mempool; an error blocks the peer.
    fn receive_tx(&self, bytes: &[u8]) -> Result<(), gossip::Invalid>;

    /// Blocks the node needs and lacks, to ask peers for.
    fn missing(&self) -> Vec<Digest>;

    /// Transactions to pass on to peers: those accepted since the last call, and with
    /// `again` also those still waiting (a peer that was cut off may have missed them).
    fn outgoing_txs(&self, again: bool) -> Vec<Vec<u8>>;
}

/// The four network channels a validator uses: simplex's votes, certificates and
/// resolver, and the node's block and transaction gossip.
pub(crate) struct Channels<S, R> {
    /// Simplex votes.
    pub(crate) votes: (S, R),
    /// Simplex certificates.
    pub(crate) certificates: (S, R),
    /// Simplex's certificate resolver.
    pub(crate) resolver: (S, R),
    /// Blocks and transactions ([`gossip`]).
    pub(crate) gossip: (S, R),
}

/// The channel numbers on the wire, in [`Channels`] order.
pub(crate) const CHANNELS: [u64; 4] = [0, 1, 2, 3];

/// The outcome of [`App::build`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Build {
    /// The block is stored; propose this digest.
    Built(Digest),
    /// The parent is being executed; ask again shortly.
    Wait,
    /// No block can be built on this parent.
    Failed,
}

/// Consensus settings.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// This validator's signing key.
    pub(crate) signer: ed25519::PrivateKey,
    /// The validator set, this validator included.
    pub(crate) validators: Vec<ed25519::PublicKey>,
    /// Digest of the genesis block, the root every chain grows from.
    pub(crate) genesis: Digest,
    /// Storage partition for the consensus journal.
    pub(crate) partition: String,
    /// Shortest time between a block and its child.
    pub(crate) min_block_interval: Duration,
    /// Longest time an idle proposer waits before proposing an empty block.
    pub(crate) max_idle_interval: Duration,
}

/// Error starting consensus.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The validator set was empty or had duplicates.
    #[error("invalid validator set")]
    InvalidValidators,
    /// This node's key is not in the validator set.
    #[error("node key is not a validator")]
    NotValidator,
}

/// Starts the simplex engine and the gossip loop over `app` on `channels`; the returned
/// handle ends when consensus stops.
pub(crate) fn start<E, A, S, R, B>(
    context: E,
    config: Config,
    app: A,
    channels: Channels<S, R>,
    blocker: B,
) -> Result<Handle<()>, Error>
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics,
    A: App,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
    B: Blocker<PublicKey = ed25519::PublicKey>,
{
    let Ok(participants) = Set::try_from(config.validators.clone()) else {
        return Err(Error::InvalidValidators);
    };
    if participants.is_empty() {
        return Err(Error::InvalidValidators);
    }
    let me = config.signer.public_key();
    if participants.position(&me).is_none() {
        return Err(Error::NotValidator);
    }
    let Some(scheme) =
        simplex::scheme::ed25519::Scheme::signer(NAMESPACE, participants, config.signer.clone())
    else {
        return Err(Error::NotValidator);
    };
    let (outbound, outbound_rx) = futures::channel::mpsc::unbounded();
    let application = Application::new(
        context.child("application"),
        config.clone(),
        app.clone(),
        outbound,
    );
    context.child("gossip").spawn({
        let blocker = blocker.clone();
        move |clock| gossip::run(clock, app, channels.gossip, blocker, outbound_rx)
    });

    // Timeouts: the leader timeout must exceed the idle interval, or an idle
    // proposer's empty block would arrive after the view is already skipped.
    let leader_timeout = config.max_idle_interval * 2 + Duration::from_millis(500);
    let cfg = simplex::Config {
        scheme,
        elector: RoundRobin::<Blake3>::default(),
        blocker,
        automaton: application.clone(),
        relay: application.clone(),
        reporter: application,
        strategy: Sequential,
        partition: config.partition,
        mailbox_size: NZUsize!(1024),
        epoch: Epoch::zero(),
        floor: simplex::Floor::Genesis(config.genesis),
        leader_timeout,
        certification_timeout: leader_timeout * 2,
        timeout_retry: Duration::from_secs(10),
        fetch_timeout: NZDuration!(Duration::from_secs(1)),
        fetch_retry_delay: Duration::from_millis(100),
        view_retention: ViewDelta::new(16),
        skip: simplex::SkipPolicy::Disabled,
        replay_buffer: NZUsize!(1 << 20),
        write_buffer: NZUsize!(1 << 20),
        page_cache: CacheRef::new(NZU16!(16_384), NZUsize!(1_000)),
        forward: simplex::ForwardPolicy::Disabled,
        track_historical_votes: false,
    };
    let engine = simplex::Engine::new(context.child("engine"), cfg);
    Ok(engine.start(channels.votes, channels.certificates, channels.resolver))
}
