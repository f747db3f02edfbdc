//! Channels for a validator set of one: nothing to send to and nothing to receive.
//!
//! Simplex needs three network channels (votes, certificates, resolver) and the
//! node a fourth (gossip). A lone validator handles its own votes locally, so
//! these channels drop every outgoing message and never yield an incoming one. A
//! multi-validator node uses `commonware_p2p::authenticated::lookup` channels
//! ([`crate::p2p`]) with the same wiring.

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex},
    time::SystemTime,
};

use commonware_actor::{Feedback, Unreliable};
use commonware_cryptography::ed25519::PublicKey;
use commonware_p2p::{
    BlockedSubscription, Blocker, CheckedSender, LimitedSender, Message, Receiver, Recipients,
};
use commonware_runtime::IoBufs;
use commonware_utils::{channel::ring, ordered::Set};

/// Sends nowhere: a lone validator has no peers.
#[derive(Clone, Debug)]
pub(crate) struct NullSender;

/// A checked send to nobody.
#[derive(Debug)]
pub(crate) struct NullChecked;

/// Never yields a message.
#[derive(Debug)]
pub(crate) struct NullReceiver;

/// Blocks nobody (there is nobody to block).
///
/// It keeps the sending side of every `blocked` subscription alive, so a
/// subscriber waits forever instead of seeing a closed channel.
#[derive(Clone, Debug, Default)]
pub(crate) struct NullBlocker {
    subscriptions: Arc<Mutex<Vec<ring::Sender<Set<PublicKey>>>>>,
}

/// The error a [`NullReceiver`] would return; it never does.
#[derive(Debug, thiserror::Error)]
#[error("null network closed")]
pub(crate) struct Closed;

impl LimitedSender for NullSender {
    type PublicKey = PublicKey;
    type Checked<'a> = NullChecked;

    fn check(
        &mut self,
        _recipients: Recipients<Self::PublicKey>,
    ) -> Result<Self::Checked<'_>, SystemTime> {
        Ok(NullChecked)
    }
}

impl CheckedSender for NullChecked {
    type PublicKey = PublicKey;

    fn recipients(&self) -> Vec<Self::PublicKey> {
        Vec::new()
    }

    fn send(self, _message: impl Into<IoBufs> + Send, _priority: bool) -> Unreliable<Feedback> {
        Unreliable::new(Feedback::Ok)
    }
}

impl Receiver for NullReceiver {
    type Error = Closed;
    type PublicKey = PublicKey;

    async fn recv(&mut self) -> Result<Message<Self::PublicKey>, Self::Error> {
        futures::future::pending().await
    }

    fn capacity(&self) -> NonZeroUsize {
        NonZeroUsize::MIN
    }
}

impl Blocker for NullBlocker {
    type PublicKey = PublicKey;

    fn block(&mut self, _peer: Self::PublicKey) -> Feedback {
        Feedback::Ok
    }

    fn blocked(&mut self) -> BlockedSubscription<Self::PublicKey> {
        let (sender, receiver) = ring::channel(NonZeroUsize::MIN);
        if let Ok(mut subscriptions) = self.subscriptions.lock() {
            subscriptions.push(sender);
        }
        receiver
    }
}

/// The four channels of a lone validator.
pub(crate) fn channels() -> super::Channels<NullSender, NullReceiver> {
    super::Channels {
        votes: (NullSender, NullReceiver),
        certificates: (NullSender, NullReceiver),
        resolver: (NullSender, NullReceiver),
        gossip: (NullSender, NullReceiver),
    }
}
