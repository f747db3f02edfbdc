//! Validators' authenticated network: Commonware `p2p::authenticated::lookup` over TCP.
//!
//! The genesis validators know each other's accounts (their ed25519 keys) and
//! addresses from `--peer account@host:port`; a validator that joins later
//! registers its `host:port` on the ledger, and every node reads it from there
//! when the set it belongs to takes over ([`LookupPeers`]). Connections are
//! encrypted and authenticated with those keys; a connection from a key outside
//! the tracked sets is refused. The four channels of
//! [`crate::consensus::Channels`] are multiplexed over each connection.

use std::{collections::HashMap, net::SocketAddr, num::NonZeroU32, time::Duration};

use agora_types::AccountId;
use commonware_cryptography::{ed25519, ChaCha20Poly1305, Signer as _};
use commonware_p2p::{
    authenticated::lookup::{self, Network, Oracle, Receiver, Sender},
    Address, AddressableManager as _,
};
use commonware_runtime::{Clock, Metrics, Network as RNetwork, Quota, Resolver, Spawner};
use commonware_stream::{
    cups::{self, Cups},
    sake::{self, Sake},
};
use commonware_utils::{ordered::Map, NZUsize};
use rand_core::CryptoRng;

use crate::consensus::{self, gossip, Channels, EpochSet, PeerSets, CHANNELS};

/// Namespace of the p2p handshake; changing it is a breaking change.
const NAMESPACE: &[u8] = b"agora-chain-p2p-v1";
/// Most peers in one validator set (the ledger's `max_validators` is at most 64). Each
/// channel's inbound mailbox holds a quota burst from every peer of every tracked set, so
/// this, [`TRACKED_SETS`] and [`MESSAGES_PER_SECOND`] together size it.
const MAX_PEERS_PER_SET: usize = 64;
/// Peer sets kept connected: the current epoch's and the one before.
const TRACKED_SETS: usize = 2;
/// Messages a peer may send per second on each channel.
const MESSAGES_PER_SECOND: u32 = 2_000;

/// Where this validator listens and where the others are.
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// Address to accept peer connections on.
    pub listen: SocketAddr,
    /// The other validators: account and address.
    pub peers: Vec<(AccountId, SocketAddr)>,
}

/// Why the network could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A peer account is not a valid ed25519 key.
    #[error("peer {0} is not an ed25519 key")]
    BadPeer(AccountId),
    /// The same peer was named twice.
    #[error("peer list names an account twice")]
    Duplicate,
}

/// The validators' channels on `lookup`.
pub(crate) type LookupChannels<E> =
    Channels<Sender<ed25519::PublicKey, E>, Receiver<ed25519::PublicKey>>;

/// The validator sets `lookup` connects to: each epoch's members at the addresses they
/// registered on the ledger, or else the ones `--peer` named.
pub(crate) struct LookupPeers {
    oracle: Oracle<ed25519::PublicKey>,
    known: HashMap<ed25519::PublicKey, SocketAddr>,
}

impl PeerSets for LookupPeers {
    fn track(&mut self, set: &EpochSet) {
        if set.members.len() > MAX_PEERS_PER_SET {
            tracing::error!(target: "agora::chain", epoch = set.epoch, members = set.members.len(), "validator set larger than the network supports");
            return;
        }
        if let Some(peers) = consensus::addresses(set, &self.known) {
            let _ = self.oracle.track(set.epoch, peers);
        }
    }
}

/// Starts the network for `signer` with `config`; returns its channels, the oracle
/// that blocks misbehaving peers, and the peer sets to track at each epoch.
pub(crate) fn start<E>(
    context: E,
    signer: ed25519::PrivateKey,
    config: &P2pConfig,
) -> Result<(LookupChannels<E>, Oracle<ed25519::PublicKey>, LookupPeers), Error>
where
    E: Spawner + Clock + CryptoRng + RNetwork + Resolver + Metrics,
{
    let me = signer.public_key();
    let mut known = HashMap::from([(me.clone(), config.listen)]);
    let mut peers = vec![(me.clone(), Address::Symmetric(config.listen))];
    for (account, addr) in &config.peers {
        let key = crate::node::account_key(account).ok_or(Error::BadPeer(*account))?;
        if key != me {
            known.insert(key.clone(), *addr);
            peers.push((key, Address::Symmetric(*addr)));
        }
    }
    let peers: Map<_, _> = peers.try_into().map_err(|_| Error::Duplicate)?;
    let handshake = Cups::<_, ChaCha20Poly1305>::new(
        Sake {
            signer,
            synchrony_bound: Duration::from_secs(5),
            max_handshake_age: Duration::from_secs(10),
            version: sake::Version::V1,
        },
        cups::Version::V1,
    );
    let max_message = u32::try_from(gossip::MAX_MESSAGE_BYTES).unwrap_or(u32::MAX);
    let mut p2p = lookup::Config::local(
        handshake,
        NAMESPACE,
        config.listen,
        NZUsize!(MAX_PEERS_PER_SET),
        max_message,
        NZUsize!(4_096),
    );
    // Peers are named by the operator: a misbehaving one may come back after a minute.
    p2p.block_duration = Duration::from_secs(60);
    p2p.tracked_peer_sets = NZUsize!(TRACKED_SETS);
    let (mut network, mut oracle) = Network::new(context.child("p2p"), p2p);
    let _ = oracle.track(0, peers);
    let quota = Quota::per_second(NonZeroU32::new(MESSAGES_PER_SECOND).unwrap_or(NonZeroU32::MIN));
    let mut register = |channel| network.register(channel, quota);
    let channels = Channels {
        votes: register(CHANNELS[0]),
        certificates: register(CHANNELS[1]),
        resolver: register(CHANNELS[2]),
        gossip: register(CHANNELS[3]),
    };
    network.start();
    let peers = LookupPeers {
        oracle: oracle.clone(),
        known,
    };
    Ok((channels, oracle, peers))
}
