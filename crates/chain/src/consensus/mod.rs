//! Consensus: Commonware simplex BFT ordering the node's blocks.
//!
//! The engine agrees on block digests; the node ([`App`]) builds, stores and
//! executes the blocks behind them. A block is durably stored by the node
//! before its digest is handed to consensus, so every digest consensus can
//! finalize has its contents on disk, and a node killed at any moment finds
//! every finalized block again on restart.
//!
//! # Epochs
//!
//! The validator set comes from the ledger ([`App::validator_set`]) and changes
//! at epoch boundaries (`agora-ledger`'s `validators` module). Each set runs its
//! own simplex engine, with the set's epoch in its signatures, its own journal
//! partition and its own subchannels of the three simplex channels (a
//! [`Muxer`] keyed by epoch). The block that chooses a new set is the last its
//! engine builds on: a leader whose parent ended the epoch re-proposes the
//! parent, so the old set can still finalize it even if a view was skipped.
//! Once the node has executed that block it stops the old engine and starts the
//! new set's, which grows from the block (its floor). A node whose key is not
//! in the new set stops taking part.
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

use std::{net::SocketAddr, time::Duration};

use commonware_consensus::{
    simplex::{self, elector::RoundRobin},
    types::{Epoch, ViewDelta},
};
use commonware_cryptography::{
    blake3::{Blake3, Digest},
    ed25519, Signer as _,
};
use commonware_macros::select;
use commonware_p2p::{utils::mux::Muxer, Address, Blocker, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::{buffer::paged::CacheRef, Clock, Handle, Metrics, Spawner, Storage};
use commonware_utils::{
    ordered::{Map, Set},
    NZDuration, NZUsize, NZU16,
};
use rand_core::CryptoRng;
use tracing::{info, warn};

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

    /// Builds a block on `parent` for the engine of validator-set `epoch`, stores it
    /// durably and returns its digest; when `parent` ended that epoch, returns `parent`
    /// itself (a re-proposal).
    ///
    /// With `speculate` false, the node may answer [`Build::Wait`] while the
    /// parent is still being executed; with `speculate` true it must build,
    /// executing unexecuted ancestors speculatively if needed.
    fn build(&self, parent: Digest, timestamp_ms: u64, speculate: bool, epoch: u64) -> Build;

    /// Checks a block proposed by `leader` to the engine of validator-set `epoch`: it
    /// extends `parent`, whose post-state is in `epoch`, names its proposer, and executes
    /// (with its ancestors not executed yet) to the state root it claims. A re-proposal
    /// (`payload == parent`) is valid when `parent` ended `epoch`.
    ///
    /// Returns `None` while the block or an ancestor is not known locally (the node then
    /// lists it in [`App::missing`]).
    fn verify(
        &self,
        parent: Digest,
        payload: Digest,
        leader: &ed25519::PublicKey,
        now_ms: u64,
        epoch: u64,
    ) -> Option<Verdict>;

    /// Consensus of validator-set `epoch` finalized `payload` (and with it all its
    /// ancestors), with this encoded finalization `certificate`.
    fn finalized(&self, payload: Digest, epoch: u64, certificate: Vec<u8>);

    /// The encoded finalization certificate of the block that ended validator-set
    /// `epoch`, if this node has it.
    fn epoch_end(&self, epoch: u64) -> Option<Vec<u8>>;

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

    /// The validator set of the executed state (`None` if it cannot be read; the node
    /// has then stopped).
    fn validator_set(&self) -> Option<EpochSet>;
}

/// A validator set as consensus runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EpochSet {
    /// The set's epoch; its engine signs under it.
    pub(crate) epoch: u64,
    /// The block the set's consensus grows from: genesis, or the last block of the
    /// previous set.
    pub(crate) floor: Digest,
    /// Members' consensus keys, with the `host:port` each registered on the ledger.
    pub(crate) members: Vec<(ed25519::PublicKey, Option<String>)>,
}

impl EpochSet {
    /// The members' keys as simplex participants (`None` if a key appears twice).
    fn participants(&self) -> Option<Set<ed25519::PublicKey>> {
        let keys: Vec<_> = self.members.iter().map(|(key, _)| key.clone()).collect();
        Set::try_from(keys).ok()
    }

    /// Whether `key` is a member.
    fn contains(&self, key: &ed25519::PublicKey) -> bool {
        self.members.iter().any(|(member, _)| member == key)
    }
}

/// Where the network learns which peers to connect to at each epoch.
pub(crate) trait PeerSets: Send + 'static {
    /// Tracks `set`'s members from now on.
    fn track(&mut self, set: &EpochSet);
}

/// No network (a lone validator): nothing to track.
impl PeerSets for () {
    fn track(&mut self, _set: &EpochSet) {}
}

/// Addresses of `set`'s members: the one each registered on the ledger, else the one
/// `known` names (from `--peer`), else an unspecified address the network cannot dial.
pub(crate) fn addresses(
    set: &EpochSet,
    known: &std::collections::HashMap<ed25519::PublicKey, SocketAddr>,
) -> Option<Map<ed25519::PublicKey, Address>> {
    let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
    let peers: Vec<_> = set
        .members
        .iter()
        .map(|(key, p2p)| {
            let registered = p2p.as_deref().and_then(|text| {
                std::net::ToSocketAddrs::to_socket_addrs(text)
                    .ok()
                    .and_then(|mut addrs| addrs.next())
            });
            let addr = registered
                .or_else(|| known.get(key).copied())
                .unwrap_or(unknown);
            (key.clone(), Address::Symmetric(addr))
        })
        .collect();
    Map::try_from(peers).ok()
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

/// The outcome of [`App::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Vote for it.
    Valid,
    /// Refuse it, the leader's fault: a wrong parent, proposer, epoch, state root or
    /// transaction. No honest leader proposes one; it is blocked.
    Faulty,
    /// Refuse it without blame: it is off the chain this node executed (this node may
    /// already be past it).
    Stale,
}

/// The outcome of [`App::build`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Build {
    /// The block is stored; propose this digest.
    Built(Digest),
    /// The parent is being executed, or is on its way from a peer; ask again shortly.
    Wait,
    /// No block can be built on this parent.
    Failed,
}

/// Consensus settings.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// This validator's signing key.
    pub(crate) signer: ed25519::PrivateKey,
    /// Storage partition prefix for the consensus journals (one per epoch).
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

/// The block a finalization certificate from a peer proves finalized in `set`'s epoch:
/// the certificate decodes, belongs to that epoch, and carries a quorum of `set`'s
/// signatures. Used for the block that ended an epoch (gossip) and by followers.
pub(crate) fn check_finalization(
    set: &EpochSet,
    certificate: &[u8],
    rng: &mut impl CryptoRng,
) -> Option<Digest> {
    use commonware_codec::Decode as _;
    use commonware_consensus::Epochable as _;
    use commonware_cryptography::certificate::Verifier as _;

    let scheme = simplex::scheme::ed25519::Scheme::verifier(NAMESPACE, set.participants()?);
    let finalization =
        simplex::types::Finalization::<simplex::scheme::ed25519::Scheme, Digest>::decode_cfg(
            commonware_codec::Copying(certificate),
            &scheme.certificate_codec_config(),
        )
        .ok()?;
    let valid = finalization.epoch() == Epoch::new(set.epoch)
        && finalization.verify(rng, &scheme, &Sequential);
    valid.then_some(finalization.proposal.payload)
}

/// How often the epoch loop looks for a new validator set.
const EPOCH_POLL: Duration = Duration::from_millis(50);

/// Starts the gossip loop and the epoch loop, which runs a simplex engine for each
/// validator set this node belongs to; the returned handle ends when consensus stops.
///
/// Fails when this node's key is not in the executed state's validator set.
pub(crate) fn start<E, A, S, R, B, P>(
    context: E,
    config: Config,
    app: A,
    channels: Channels<S, R>,
    blocker: B,
    peers: P,
) -> Result<Handle<()>, Error>
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics,
    A: App,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
    B: Blocker<PublicKey = ed25519::PublicKey>,
    P: PeerSets,
{
    let Some(set) = app.validator_set() else {
        return Err(Error::InvalidValidators);
    };
    let me = config.signer.public_key();
    if !set.contains(&me) {
        return Err(Error::NotValidator);
    }
    let (outbound, outbound_rx) = futures::channel::mpsc::unbounded();
    context.child("gossip").spawn({
        let app = app.clone();
        let blocker = blocker.clone();
        move |clock| gossip::run(clock, app, channels.gossip, blocker, outbound_rx)
    });
    let mut muxes = Vec::new();
    for (name, (sender, receiver)) in [
        ("votes", channels.votes),
        ("certificates", channels.certificates),
        ("resolver", channels.resolver),
    ] {
        let (muxer, handle) = Muxer::new(context.child(name), sender, receiver);
        muxer.start();
        muxes.push(handle);
    }
    Ok(context.child("epochs").spawn(move |context| async move {
        let mut peers = peers;
        let mut muxes = muxes;
        let mut current = Some(set);
        loop {
            let Some(set) = current.take().or_else(|| app.validator_set()) else {
                return;
            };
            peers.track(&set);
            let epoch = set.epoch;
            if !set.contains(&me) {
                info!(target: "agora::chain", epoch, "not in the validator set of this epoch: consensus stops here");
                return;
            }
            let (Ok(votes), Ok(certificates), Ok(resolver)) = (
                muxes[0].register(epoch).await,
                muxes[1].register(epoch).await,
                muxes[2].register(epoch).await,
            ) else {
                warn!(target: "agora::chain", epoch, "cannot open this epoch's channels");
                return;
            };
            let Some(engine) = engine(
                context.child("engine").with_attribute("epoch", epoch),
                &config,
                &set,
                app.clone(),
                outbound.clone(),
                blocker.clone(),
            ) else {
                warn!(target: "agora::chain", epoch, "invalid validator set");
                return;
            };
            info!(target: "agora::chain", epoch, validators = set.members.len(), "consensus epoch started");
            let mut engine = engine.start(votes, certificates, resolver);
            // Run until this node has executed the block that chose the next set.
            loop {
                select! {
                    _ = &mut engine => {
                        warn!(target: "agora::chain", epoch, "consensus engine exited");
                        return;
                    },
                    _ = context.sleep(EPOCH_POLL) => {
                        match app.validator_set() {
                            Some(next) if next.epoch > epoch => {
                                engine.abort();
                                current = Some(next);
                                break;
                            }
                            Some(_) => {}
                            None => return,
                        }
                    },
                }
            }
        }
    }))
}

/// The simplex engine of one epoch, over the node's [`Application`].
type EpochEngine<E, A, B> = simplex::Engine<
    E,
    simplex::scheme::ed25519::Scheme,
    RoundRobin<Blake3>,
    B,
    Digest,
    Application<E, A>,
    Application<E, A>,
    Application<E, A>,
    Sequential,
>;

/// The simplex engine of `set`, or `None` if this node cannot sign in it.
fn engine<E, A, B>(
    context: E,
    config: &Config,
    set: &EpochSet,
    app: A,
    outbound: futures::channel::mpsc::UnboundedSender<gossip::Outbound>,
    blocker: B,
) -> Option<EpochEngine<E, A, B>>
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics,
    A: App,
    B: Blocker<PublicKey = ed25519::PublicKey>,
{
    let scheme = simplex::scheme::ed25519::Scheme::signer(
        NAMESPACE,
        set.participants()?,
        config.signer.clone(),
    )?;
    let application = Application::new(
        context.child("application"),
        config.clone(),
        set.epoch,
        app,
        outbound,
    );
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
        partition: format!("{}-epoch-{}", config.partition, set.epoch),
        mailbox_size: NZUsize!(1024),
        epoch: Epoch::new(set.epoch),
        floor: simplex::Floor::Genesis(set.floor),
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
    Some(simplex::Engine::new(context.child("engine"), cfg))
}
