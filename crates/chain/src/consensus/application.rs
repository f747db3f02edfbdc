//! The glue between simplex and the node: proposes, verifies, relays and reports.

use std::{
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};

use commonware_actor::Feedback;
use commonware_consensus::{
    simplex::{
        scheme::ed25519::Scheme,
        types::{Activity, Context},
        Plan,
    },
    Automaton, CertifiableAutomaton, Relay, Reporter,
};
use commonware_cryptography::{blake3::Digest, ed25519::PublicKey};
use commonware_runtime::{Clock, Spawner};
use commonware_utils::channel::oneshot;
use tracing::{debug, warn};

use commonware_p2p::Recipients;
use futures::channel::mpsc;

use super::{gossip::Outbound, App, Build, Config, Verdict};

/// How often a pending verification or an idle proposer looks again.
const POLL: Duration = Duration::from_millis(5);
/// How long a proposer waits for its parent's execution before speculating.
const PATIENCE: Duration = Duration::from_millis(50);

/// Simplex's automaton, relay and reporter, backed by the node's [`App`].
pub(crate) struct Application<E, A> {
    context: Arc<E>,
    /// The validator-set epoch of this engine.
    epoch: u64,
    min_block_interval: Duration,
    max_idle_interval: Duration,
    app: A,
    outbound: mpsc::UnboundedSender<Outbound>,
}

impl<E, A: Clone> Clone for Application<E, A> {
    fn clone(&self) -> Self {
        Self {
            context: Arc::clone(&self.context),
            epoch: self.epoch,
            min_block_interval: self.min_block_interval,
            max_idle_interval: self.max_idle_interval,
            app: self.app.clone(),
            outbound: self.outbound.clone(),
        }
    }
}

impl<E, A> Application<E, A>
where
    E: Clock + Spawner,
    A: App,
{
    pub(crate) fn new(
        context: E,
        config: Config,
        epoch: u64,
        app: A,
        outbound: mpsc::UnboundedSender<Outbound>,
    ) -> Self {
        Self {
            context: Arc::new(context),
            epoch,
            min_block_interval: config.min_block_interval,
            max_idle_interval: config.max_idle_interval,
            app,
            outbound,
        }
    }
}

fn now_ms(clock: &impl Clock) -> u64 {
    let since = clock
        .current()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

impl<E, A> Automaton for Application<E, A>
where
    E: Clock + Spawner,
    A: App,
{
    type Context = Context<Digest, PublicKey>;
    type Digest = Digest;

    async fn propose(&mut self, context: Self::Context) -> oneshot::Receiver<Self::Digest> {
        let (sender, receiver) = oneshot::channel();
        let app = self.app.clone();
        let min = self.min_block_interval;
        let idle = self.max_idle_interval;
        let parent = context.parent.1;
        let epoch = self.epoch;
        let clock = Arc::clone(&self.context);
        self.context.child("propose").spawn(move |_| async move {
            let parent_ms = app.timestamp(&parent).unwrap_or(0);
            // Wait for the pacing rule in the module docs, or for consensus to give up.
            loop {
                if sender.is_closed() {
                    return;
                }
                let since = Duration::from_millis(now_ms(&*clock).saturating_sub(parent_ms));
                if since >= idle || (since >= min && app.pending() > 0) {
                    break;
                }
                let wait = if since < min { min - since } else { POLL };
                clock.sleep(wait.min(Duration::from_millis(50))).await;
            }
            // A block never goes back in time, even if the local clock does.
            let timestamp = now_ms(&*clock).max(parent_ms.saturating_add(1));

            // The parent is usually executed within milliseconds of its
            // finalization; waiting for that avoids executing it twice.
            // Speculation covers a parent that is not finalized (yet).
            let mut waited = Duration::ZERO;
            loop {
                if sender.is_closed() {
                    return;
                }
                match app.build(parent, timestamp, waited >= PATIENCE, epoch) {
                    Build::Built(digest) => {
                        debug!(target: "agora::chain", ?digest, "proposed block");
                        let _ = sender.send(digest);
                        return;
                    }
                    Build::Wait => {
                        clock.sleep(POLL).await;
                        waited += POLL;
                    }
                    Build::Failed => {
                        warn!(target: "agora::chain", ?parent, "cannot build on parent");
                        return;
                    }
                }
            }
        });
        receiver
    }

    async fn verify(
        &mut self,
        context: Self::Context,
        payload: Self::Digest,
    ) -> oneshot::Receiver<bool> {
        let (sender, receiver) = oneshot::channel();
        let app = self.app.clone();
        let parent = context.parent.1;
        let leader = context.leader;
        let epoch = self.epoch;
        let clock = Arc::clone(&self.context);
        let outbound = self.outbound.clone();
        self.context.child("verify").spawn(move |_| async move {
            // Keep the request pending while the block is unknown: it may still arrive.
            loop {
                if sender.is_closed() {
                    return;
                }
                if let Some(verdict) = app.verify(parent, payload, &leader, now_ms(&*clock), epoch)
                {
                    if verdict == Verdict::Faulty {
                        let _ = outbound.unbounded_send(Outbound::Penalize(leader));
                    }
                    let _ = sender.send(verdict == Verdict::Valid);
                    return;
                }
                clock.sleep(POLL * 10).await;
            }
        });
        receiver
    }
}

impl<E, A> CertifiableAutomaton for Application<E, A>
where
    E: Clock + Spawner,
    A: App,
{
}

impl<E, A> Relay for Application<E, A>
where
    E: Clock + Spawner,
    A: App,
{
    type Digest = Digest;
    type PublicKey = PublicKey;
    type Plan = Plan<PublicKey>;

    fn broadcast(&mut self, payload: Self::Digest, plan: Self::Plan) -> Feedback {
        // The block is on disk already (stored before its digest was proposed);
        // the gossip loop reads and sends it.
        let out = match plan {
            // A held candidate may still be abandoned: send it with the proposal.
            Plan::Prepare { .. } => return Feedback::Ok,
            Plan::Propose { .. } => Outbound::All(payload),
            Plan::Forward { recipients, .. } => match recipients {
                Recipients::All => Outbound::All(payload),
                Recipients::One(peer) => Outbound::Some(payload, vec![peer]),
                Recipients::Some(peers) => Outbound::Some(payload, peers),
            },
        };
        let _ = self.outbound.unbounded_send(out);
        Feedback::Ok
    }
}

impl<E, A> Reporter for Application<E, A>
where
    E: Clock + Spawner,
    A: App,
{
    type Activity = Activity<Scheme, Digest>;

    fn report(&mut self, activity: Self::Activity) -> Feedback {
        if let Activity::Finalization(finalization) = activity {
            use commonware_codec::Encode as _;
            let certificate = finalization.encode().to_vec();
            self.app
                .finalized(finalization.proposal.payload, self.epoch, certificate);
        }
        Feedback::Ok
    }
}
