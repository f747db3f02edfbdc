//! Deterministic simulation of a four-validator chain.
//!
//! Each validator is a real [`Node`] (redb in a temporary folder, the real
//! `agora-ledger`) running the real consensus wiring ([`consensus::start`]) on
//! Commonware's deterministic runtime and simulated network, so a scenario is
//! reproducible from its seed: links can be cut, slowed and made lossy, a
//! validator crashed and restarted from its data, or replaced by one of the
//! library's byzantine actors. A fifth node, funded but not in the genesis set,
//! can bond and register to take a validator's place at an epoch boundary.
//!
//! Every scenario checks safety (no two validators executed different blocks
//! at a height; equal heights have equal state roots) and liveness (after
//! the fault heals, every honest validator executes every submitted
//! transaction). Each runs under a fixed seed and two random ones; the seed is
//! printed first, so a failure names the seed that reproduces it.

use std::{sync::Arc, time::Duration};

use agora_types::{AccountId, ChainId, Genesis, Hash, Keypair, SignedTx, TxBody};
use commonware_consensus::{
    simplex::{self, elector::RoundRobin, mocks},
    types::Epoch,
};
use commonware_cryptography::{blake3::Blake3, ed25519};
use commonware_p2p::{
    simulated::{self, Link, Network, Oracle, SocketManager},
    utils::mux::{MuxHandle, Muxer},
    AddressableManager as _,
};
use commonware_runtime::{deterministic, Clock, Handle, Quota, Runner as _, Spawner, Supervisor};
use commonware_utils::{ordered::Set, probability, NZUsize, NZU32};
use tempfile::TempDir;

use crate::{
    consensus::{self, Channels, CHANNELS},
    genesis,
    node::{self, Node},
    Config,
};

/// Validators in the genesis set.
const VALIDATORS: usize = 4;
/// Nodes in the simulation: the genesis validators and one that may join later.
const NODES: usize = VALIDATORS + 1;
const GENESIS_MS: u64 = 1_767_225_600_000;
const FEE: u128 = 1_000_000;

fn chain_id() -> ChainId {
    ChainId::new("agora-sim").expect("valid chain id")
}

fn user() -> Keypair {
    Keypair::from_seed(b"sim-user")
}

fn fast() -> Link {
    Link {
        latency: Duration::from_millis(10),
        jitter: Duration::from_millis(2),
        success_rate: probability!(1.0),
    }
}

/// Four validators, their nodes, and the simulated network between them.
struct Sim {
    context: deterministic::Context,
    oracle: Oracle<ed25519::PublicKey, deterministic::Context>,
    dirs: Vec<TempDir>,
    genesis: Genesis,
    keys: Vec<Keypair>,
    public: Vec<ed25519::PublicKey>,
    nodes: Vec<Option<Arc<Node>>>,
    running: Vec<Option<Handle<()>>>,
    submitted: Vec<Hash>,
    next_nonce: u64,
    restarts: usize,
}

impl Sim {
    async fn new(context: deterministic::Context) -> Sim {
        let keys: Vec<Keypair> = (0..NODES)
            .map(|i| Keypair::from_seed(format!("sim-validator-{i}").as_bytes()))
            .collect();
        let accounts: Vec<AccountId> = keys.iter().map(Keypair::account_id).collect();
        let genesis = genesis::dev_validators(
            &chain_id(),
            GENESIS_MS,
            &accounts[..VALIDATORS],
            &[user().account_id(), accounts[VALIDATORS]],
        );
        let public: Vec<ed25519::PublicKey> = keys
            .iter()
            .map(|key| node::account_key(&key.account_id()).expect("ed25519 key"))
            .collect();
        let (network, oracle) = Network::new_with_peers(
            context.child("network"),
            simulated::Config {
                max_size: u32::try_from(consensus::gossip::MAX_MESSAGE_BYTES).unwrap(),
                max_peers_per_set: NZUsize!(NODES),
                disconnect_on_block: true,
                tracked_peer_sets: NZUsize!(1),
            },
            public.clone(),
        )
        .await;
        network.start();
        for from in &public {
            for to in &public {
                if from != to {
                    oracle
                        .add_link(from.clone(), to.clone(), fast())
                        .await
                        .unwrap();
                }
            }
        }
        Sim {
            context,
            oracle,
            dirs: (0..NODES).map(|_| tempfile::tempdir().unwrap()).collect(),
            genesis,
            keys,
            public,
            nodes: vec![None; NODES],
            running: (0..NODES).map(|_| None).collect(),
            submitted: Vec::new(),
            next_nonce: 0,
            restarts: 0,
        }
    }

    fn node_config(&self, i: usize) -> Config {
        let mut config = Config::new(
            self.dirs[i].path().to_path_buf(),
            self.genesis.clone(),
            self.keys[i].clone(),
            "127.0.0.1:0".parse().unwrap(),
        );
        config.min_block_interval = Duration::from_millis(100);
        config.max_idle_interval = Duration::from_millis(500);
        config
    }

    async fn channels(
        &self,
        i: usize,
    ) -> Channels<
        simulated::Sender<ed25519::PublicKey, deterministic::Context>,
        simulated::Receiver<ed25519::PublicKey>,
    > {
        let control = self.oracle.control(self.public[i].clone());
        let quota = Quota::per_second(NZU32!(100_000));
        let mut registered = Vec::new();
        for channel in CHANNELS {
            registered.push(control.register(channel, quota).await.unwrap());
        }
        let mut registered = registered.into_iter();
        Channels {
            votes: registered.next().unwrap(),
            certificates: registered.next().unwrap(),
            resolver: registered.next().unwrap(),
            gossip: registered.next().unwrap(),
        }
    }

    /// Opens validator `i`'s node from its folder and starts its consensus.
    async fn start(&mut self, i: usize) {
        self.start_from(i, None).await;
    }

    /// Starts validator `i`, from `snapshot` when its folder is empty.
    async fn start_from(&mut self, i: usize, snapshot: Option<&crate::sync::StateSnapshot>) {
        let node = Node::open_from(&self.node_config(i), snapshot).expect("open node");
        self.start_node(i, node).await;
    }

    /// Starts validator `i` as a proposer of blocks with wrong state roots; it is left
    /// out of [`Sim::honest`].
    async fn start_liar(&mut self, i: usize) {
        let node = Node::open(&self.node_config(i))
            .expect("open node")
            .lying_about_state_roots();
        self.start_node(i, node).await;
        self.nodes[i] = None;
    }

    async fn start_node(&mut self, i: usize, node: Node) {
        let config = self.node_config(i);
        let node = Arc::new(node.with_inline_apply());
        let consensus_config = consensus::Config {
            signer: node::consensus_key(&config.key),
            partition: format!("simplex-{i}"),
            min_block_interval: config.min_block_interval,
            max_idle_interval: config.max_idle_interval,
        };
        let channels = self.channels(i).await;
        let blocker = self.oracle.control(self.public[i].clone());
        let peers = SimPeers(self.oracle.socket_manager());
        let app = Arc::clone(&node);
        let handle = self
            .context
            .child("validator")
            .with_attribute("index", i + self.restarts * NODES)
            .spawn(move |context| async move {
                let engine =
                    consensus::start(context, consensus_config, app, channels, blocker, peers)
                        .expect("consensus starts");
                let _ = engine.await;
            });
        self.nodes[i] = Some(node);
        self.running[i] = Some(handle);
    }

    /// Validator `i`'s simplex signing scheme over the genesis set (epoch 0's participants; the
    /// fifth node is not one of them).
    fn genesis_signer(&self, i: usize) -> simplex::scheme::ed25519::Scheme {
        let participants = Set::try_from(self.public[..VALIDATORS].to_vec()).unwrap();
        simplex::scheme::ed25519::Scheme::signer(
            consensus::NAMESPACE,
            participants,
            node::consensus_key(&self.keys[i]),
        )
        .expect("signer")
    }

    /// Starts validator 0 as the library's equivocator: it proposes different
    /// digests to different validators.
    async fn start_equivocator(&mut self) {
        let scheme = self.genesis_signer(0);
        let channels = self.channels(0).await;
        // Honest nodes run epoch 0's simplex on subchannel 0 of each channel.
        let subchannel = |(sender, receiver)| {
            let (muxer, handle): (_, MuxHandle<_>) =
                Muxer::new(self.context.child("mux"), sender, receiver);
            muxer.start();
            handle
        };
        let mut votes = subchannel(channels.votes);
        let mut certificates = subchannel(channels.certificates);
        let votes = votes.register(0).await.unwrap();
        let certificates = certificates.register(0).await.unwrap();
        let relay = Arc::new(mocks::relay::Relay::new());
        let equivocator = mocks::equivocator::Equivocator::new(
            self.context.child("byzantine"),
            mocks::equivocator::Config::<_, _, Blake3> {
                scheme,
                elector: RoundRobin::<Blake3>::default(),
                epoch: Epoch::zero(),
                relay,
            },
        );
        self.running[0] = Some(equivocator.start(votes, certificates));
    }

    async fn start_all(&mut self) {
        for i in 0..VALIDATORS {
            self.start(i).await;
        }
    }

    /// Kills validator `i` at once; its folder and consensus journal stay.
    fn crash(&mut self, i: usize) {
        if let Some(handle) = self.running[i].take() {
            handle.abort();
        }
        self.nodes[i] = None;
        self.restarts += 1;
    }

    /// Cuts (or restores) every link to and from validator `i`.
    async fn isolate(&mut self, i: usize, cut: bool) {
        for j in 0..NODES {
            if i == j {
                continue;
            }
            for (from, to) in [(i, j), (j, i)] {
                let (from, to) = (self.public[from].clone(), self.public[to].clone());
                if cut {
                    self.oracle.remove_link(from, to).await.unwrap();
                } else {
                    self.oracle.add_link(from, to, fast()).await.unwrap();
                }
            }
        }
    }

    /// Replaces every link with `link`.
    async fn relink(&mut self, link: Link) {
        for from in &self.public {
            for to in &self.public {
                if from != to {
                    // A link cut by the scenario is already gone.
                    let _ = self.oracle.remove_link(from.clone(), to.clone()).await;
                    self.oracle
                        .add_link(from.clone(), to.clone(), link.clone())
                        .await
                        .unwrap();
                }
            }
        }
    }

    fn honest(&self) -> impl Iterator<Item = (usize, &Arc<Node>)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, node)| node.as_ref().map(|node| (i, node)))
    }

    /// Submits `body` signed by node `i`'s key with `nonce`, to every running node.
    fn submit_from(&mut self, i: usize, nonce: u64, body: TxBody) {
        let tx = SignedTx::sign(&self.keys[i], &chain_id(), nonce, FEE, body);
        let bytes = hex::encode(agora_types::encode(&tx));
        for (_, node) in self.honest() {
            let _ = node.submit_hex(&bytes);
        }
        self.submitted.push(tx.hash());
    }

    /// Submits `count` transfers from the user, spread over the running nodes.
    fn submit(&mut self, count: u64) {
        let targets: Vec<Arc<Node>> = self.honest().map(|(_, node)| Arc::clone(node)).collect();
        let first = self.next_nonce;
        self.next_nonce += count;
        for nonce in first..first + count {
            let tx = SignedTx::sign(
                &user(),
                &chain_id(),
                nonce,
                FEE,
                TxBody::Transfer {
                    to: self.keys[0].account_id(),
                    amount: 1,
                },
            );
            let bytes = agora_types::encode(&tx);
            let node = &targets[usize::try_from(nonce).unwrap() % targets.len()];
            // A node may refuse a nonce ahead of its own view; gossip brings the rest.
            let _ = node.submit_hex(&hex::encode(bytes));
            self.submitted.push(tx.hash());
        }
    }

    /// Runs until every running node has executed every submitted transaction and
    /// reached `height`, or panics after `limit` of simulated time.
    async fn run_until(&self, height: u64, limit: Duration) {
        let start = self.context.current();
        loop {
            let done = self.honest().all(|(_, node)| {
                node.head().height >= height
                    && self.submitted.iter().all(|hash| {
                        node.tx_status(&hash.to_hex())
                            .is_ok_and(|s| s.status == agora_rpc::wire::TxState::Committed)
                    })
            });
            if done {
                return;
            }
            let elapsed = self.context.current().duration_since(start).unwrap();
            if elapsed > limit {
                let heights: Vec<_> = self
                    .honest()
                    .map(|(i, node)| {
                        let uncommitted = self
                            .submitted
                            .iter()
                            .filter(|hash| {
                                node.tx_status(&hash.to_hex())
                                    .is_ok_and(|s| s.status != agora_rpc::wire::TxState::Committed)
                            })
                            .count();
                        (i, node.head().height, uncommitted)
                    })
                    .collect();
                panic!(
                    "no progress to height {height} within {limit:?}: \
                     (validator, height, submitted txs not committed) {heights:?}"
                );
            }
            self.context.sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits `duration` of simulated time.
    async fn wait(&self, duration: Duration) {
        self.context.sleep(duration).await;
    }

    /// Safety: executed blocks and state roots agree at every height two nodes share.
    fn check_safety(&self) {
        self.check_safety_from(1);
    }

    /// [`Sim::check_safety`] from height `from` (a node that joined by state sync lacks
    /// the blocks below).
    fn check_safety_from(&self, from: u64) {
        let nodes: Vec<_> = self.honest().collect();
        let heights: Vec<_> = nodes.iter().map(|(i, n)| (*i, n.head().height)).collect();
        eprintln!(
            "  at {:?}: heights {heights:?}, {} txs submitted",
            self.context
                .current()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                - Duration::from_millis(GENESIS_MS),
            self.submitted.len()
        );
        let top = nodes
            .iter()
            .map(|(_, node)| node.head().height)
            .min()
            .unwrap_or(0);
        for height in from..=top {
            let mut seen: Option<(Hash, Hash)> = None;
            for (i, node) in &nodes {
                let stored = node
                    .stored_block(height)
                    .unwrap_or_else(|| panic!("validator {i} lacks block {height}"));
                let here = (stored.block.hash(), stored.result_root);
                match seen {
                    None => seen = Some(here),
                    Some(first) => {
                        assert_eq!(first, here, "validator {i} disagrees at height {height}")
                    }
                }
            }
        }
    }

    fn min_height(&self) -> u64 {
        self.honest()
            .map(|(_, node)| node.head().height)
            .min()
            .unwrap_or(0)
    }
}

/// The simulated network's peer sets, tracked at each epoch like `lookup`'s.
struct SimPeers(SocketManager<ed25519::PublicKey, deterministic::Context>);

impl consensus::PeerSets for SimPeers {
    fn track(&mut self, set: &consensus::EpochSet) {
        if let Some(peers) = consensus::addresses(set, &Default::default()) {
            let _ = self.0.track(set.epoch, peers);
        }
    }
}

/// Two seeds that differ from run to run.
fn random_seeds() -> [u64; 2] {
    let random = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    [random, random.rotate_left(17) ^ 0x9e37_79b9]
}

/// Runs `scenario` under a fixed seed and two random ones.
fn run_seeds<F, Fut>(name: &str, fixed: u64, scenario: F)
where
    F: Fn(Sim) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    run_seed(name, fixed, scenario);
    for seed in random_seeds() {
        run_seed(name, seed, scenario);
    }
}

/// Runs `scenario` under `seed`, printing the seed first.
fn run_seed<F, Fut>(name: &str, seed: u64, scenario: F)
where
    F: FnOnce(Sim) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    eprintln!("scenario {name}: seed {seed}");
    let config = deterministic::Config::default()
        .with_seed(seed)
        .with_start_time(std::time::UNIX_EPOCH + Duration::from_millis(GENESIS_MS + 1_000))
        .with_timeout(Some(Duration::from_secs(48 * 3_600)));
    deterministic::Runner::new(config).start(|context| async move {
        let sim = Sim::new(context).await;
        scenario(sim).await;
    });
}

#[test]
fn four_honest_validators_agree_and_commit_everything() {
    run_seeds("all honest", 1, |mut sim| async move {
        sim.start_all().await;
        sim.submit(40);
        sim.run_until(10, Duration::from_secs(60)).await;
        sim.check_safety();
    });
}

#[test]
fn a_crashed_validator_restarts_from_its_data_and_catches_up() {
    run_seeds("crash and restart", 2, |mut sim| async move {
        sim.start_all().await;
        sim.submit(20);
        sim.run_until(3, Duration::from_secs(60)).await;
        sim.crash(3);
        // Three of four are a quorum: the chain goes on without it.
        let before = sim.min_height();
        sim.submit(20);
        sim.run_until(before + 10, Duration::from_secs(120)).await;
        sim.check_safety();
        sim.start(3).await;
        let target = sim.min_height() + 5;
        sim.submit(10);
        sim.run_until(target, Duration::from_secs(120)).await;
        sim.check_safety();
    });
}

#[test]
fn a_partitioned_validator_rejoins_after_healing() {
    run_seeds("partition and heal", 3, |mut sim| async move {
        sim.start_all().await;
        sim.submit(10);
        sim.run_until(3, Duration::from_secs(60)).await;
        sim.isolate(1, true).await;
        let cut_off = sim.nodes[1].as_ref().unwrap().head().height;
        sim.submit(20);
        sim.wait(Duration::from_secs(20)).await;
        // The majority went on; the isolated one cannot finalize alone.
        let majority = sim
            .honest()
            .filter(|(i, _)| *i != 1)
            .map(|(_, node)| node.head().height)
            .min()
            .unwrap();
        assert!(
            majority > cut_off + 5,
            "majority at {majority}, cut at {cut_off}"
        );
        assert!(sim.nodes[1].as_ref().unwrap().head().height <= cut_off + 1);
        sim.check_safety();
        sim.isolate(1, false).await;
        sim.run_until(majority + 3, Duration::from_secs(120)).await;
        sim.check_safety();
    });
}

#[test]
fn a_split_in_half_stalls_safely_and_resumes_when_healed() {
    run_seeds("two-two split", 4, |mut sim| async move {
        sim.start_all().await;
        sim.run_until(2, Duration::from_secs(60)).await;
        for (a, b) in [(0, 2), (0, 3), (1, 2), (1, 3)] {
            for (from, to) in [(a, b), (b, a)] {
                let (from, to) = (sim.public[from].clone(), sim.public[to].clone());
                sim.oracle.remove_link(from, to).await.unwrap();
            }
        }
        sim.wait(Duration::from_secs(5)).await;
        let stalled: Vec<u64> = sim.honest().map(|(_, node)| node.head().height).collect();
        sim.submit(10);
        sim.wait(Duration::from_secs(20)).await;
        let later: Vec<u64> = sim.honest().map(|(_, node)| node.head().height).collect();
        // Two of four are no quorum: nothing new is finalized anywhere.
        assert_eq!(stalled, later, "a half finalized without a quorum");
        sim.check_safety();
        sim.relink(fast()).await;
        sim.run_until(later.iter().max().unwrap() + 3, Duration::from_secs(120))
            .await;
        sim.check_safety();
    });
}

#[test]
fn slow_lossy_links_delay_but_never_split_the_chain() {
    run_seeds("lossy links", 5, |mut sim| async move {
        sim.relink(Link {
            latency: Duration::from_millis(150),
            jitter: Duration::from_millis(100),
            success_rate: probability!(0.75),
        })
        .await;
        sim.start_all().await;
        sim.submit(30);
        sim.run_until(8, Duration::from_secs(300)).await;
        sim.check_safety();
    });
}

#[test]
fn an_equivocating_validator_cannot_fork_the_honest_three() {
    run_seeds("equivocator", 6, |mut sim| async move {
        sim.start_equivocator().await;
        for i in 1..VALIDATORS {
            sim.start(i).await;
        }
        sim.submit(30);
        sim.run_until(10, Duration::from_secs(300)).await;
        sim.check_safety();
    });
}

#[test]
fn a_peer_sending_garbage_is_blocked_and_the_chain_goes_on() {
    run_seeds("garbage peer", 7, |mut sim| async move {
        use commonware_p2p::{Recipients, Sender as _};
        for i in 1..VALIDATORS {
            sim.start(i).await;
        }
        // Validator 0's key, but it sends junk on every channel instead of running consensus.
        let mut channels = sim.channels(0).await;
        for sender in [
            &mut channels.votes.0,
            &mut channels.certificates.0,
            &mut channels.resolver.0,
            &mut channels.gossip.0,
        ] {
            sender.send(Recipients::All, b"\x07not a message".to_vec(), false);
            // The same on epoch 0's subchannel of the simplex channels, where simplex reads it.
            sender.send(Recipients::All, b"\x00\x07not a message".to_vec(), false);
        }
        // A want of the wrong length, and a block that does not decode.
        channels.gossip.0.send(Recipients::All, vec![1u8; 5], false);
        channels
            .gossip
            .0
            .send(Recipients::All, vec![0u8; 100], false);
        sim.submit(10);
        sim.run_until(5, Duration::from_secs(120)).await;
        let blocked = sim.oracle.blocked().await.unwrap();
        for i in 1..VALIDATORS {
            assert!(
                blocked.contains(&(sim.public[i].clone(), sim.public[0].clone())),
                "validator {i} did not block the garbage peer: {blocked:?}"
            );
        }
        sim.check_safety();
    });
}

#[test]
fn a_seed_replays_to_the_same_chain() {
    let run = |seed: u64| {
        let config = deterministic::Config::default()
            .with_seed(seed)
            .with_start_time(std::time::UNIX_EPOCH + Duration::from_millis(GENESIS_MS + 1_000));
        deterministic::Runner::new(config).start(|context| async move {
            let mut sim = Sim::new(context).await;
            sim.relink(Link {
                latency: Duration::from_millis(80),
                jitter: Duration::from_millis(60),
                success_rate: probability!(0.9),
            })
            .await;
            sim.start_all().await;
            sim.submit(20);
            sim.run_until(6, Duration::from_secs(300)).await;
            let node = sim.nodes[0].as_ref().unwrap();
            (1..=6)
                .map(|h| node.stored_block(h).unwrap().block.hash())
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(run(11), run(11));
}

#[test]
fn a_validator_that_never_ran_joins_a_long_chain_by_state_sync() {
    // The fixed seed grows the full 10,000 blocks; the random ones a shorter chain
    // (`AGORA_SIM_LONG_CHAIN` overrides the fixed seed's length).
    let long: u64 = std::env::var("AGORA_SIM_LONG_CHAIN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let [a, b] = random_seeds();
    for (seed, blocks) in [(8, long), (a, 1_000), (b, 1_000)] {
        run_seed("state sync", seed, move |sim| state_sync(sim, blocks));
    }
}

async fn state_sync(mut sim: Sim, blocks: u64) {
    {
        for i in 0..3 {
            sim.start(i).await;
        }
        sim.submit(30);
        sim.run_until(blocks, Duration::from_secs(blocks * 10))
            .await;
        let snapshot = sim.nodes[0].as_ref().unwrap().state_snapshot().unwrap();
        let synced_at = snapshot.head.height;

        // A snapshot whose entries do not hash to its root is refused before anything is written.
        let mut forged = snapshot.clone();
        if let Some((_, value)) = forged.entries.iter_mut().find(|(_, v)| v.len() > 8) {
            value[0] ^= 1;
        }
        let forged_dir = tempfile::tempdir().unwrap();
        let mut config = sim.node_config(3);
        config.data_dir = forged_dir.path().to_path_buf();
        assert!(matches!(
            Node::open_from(&config, Some(&forged)),
            Err(crate::Error::Sync(_))
        ));

        sim.start_from(3, Some(&snapshot)).await;
        // Transactions below the sync height are not on the joined node; watch new ones.
        sim.submitted.clear();
        sim.submit(10);
        sim.run_until(synced_at + 10, Duration::from_secs(300))
            .await;
        let joined = sim.nodes[3].as_ref().unwrap();
        assert!(
            joined.stored_block(synced_at).is_none(),
            "replayed instead of syncing"
        );
        sim.check_safety_from(synced_at + 1);

        // Same answers, with the same proofs, at the same height.
        let reference = sim.nodes[0].as_ref().unwrap();
        while reference.head().height != joined.head().height {
            sim.wait(Duration::from_millis(10)).await;
        }
        for account in [user().account_id(), sim.keys[0].account_id()] {
            let address = account.to_string();
            assert_eq!(
                reference.account(&address).map_err(|e| e.message),
                joined.account(&address).map_err(|e| e.message)
            );
            let params = agora_rpc::wire::ProofParams {
                kind: agora_rpc::wire::ProofKind::Account,
                address,
            };
            let (a, b) = (reference.proof(&params), joined.proof(&params));
            assert_eq!(a.map_err(|e| e.message), b.map_err(|e| e.message));
        }
    }
}

#[test]
fn a_validator_offline_for_two_thousand_blocks_catches_up_by_block_sync() {
    run_seeds("long outage", 9, |mut sim| async move {
        sim.start_all().await;
        sim.submit(10);
        sim.run_until(3, Duration::from_secs(60)).await;
        sim.crash(3);
        sim.run_until(2_000, Duration::from_secs(20_000)).await;
        let target = sim.min_height();
        sim.start(3).await;
        let start = sim.context.current();
        let joined = sim.nodes[3].as_ref().unwrap();
        while joined.head().height < target {
            sim.wait(Duration::from_millis(100)).await;
        }
        let took = sim.context.current().duration_since(start).unwrap();
        eprintln!("  caught up {target} blocks in {took:?}");
        // Parents are asked for as each block arrives, many at a time: well under the
        // 2,000 round trips of one block per request.
        assert!(took < Duration::from_secs(60), "catching up took {took:?}");
        sim.check_safety();
    });
}

/// Node 4 (funded, not a genesis validator) bonds and registers and validator 3 withdraws;
/// waits until validator 0 executed the boundary block, checks the new set, and returns the
/// boundary's height.
async fn replace_validator_3_by_node_4(sim: &mut Sim) -> u64 {
    let joiner = VALIDATORS;
    sim.submit_from(
        joiner,
        0,
        TxBody::Bond {
            amount: genesis::DEV_VALIDATOR_STAKE,
        },
    );
    sim.submit_from(
        joiner,
        1,
        TxBody::RegisterValidator {
            p2p: "10.0.0.5:26670".try_into().unwrap(),
        },
    );
    sim.submit_from(3, 0, TxBody::DeregisterValidator);
    let reference = Arc::clone(sim.nodes[0].as_ref().unwrap());
    let start = sim.context.current();
    let set = loop {
        let set = consensus::App::validator_set(&reference).unwrap();
        if set.epoch == 1 {
            break set;
        }
        assert!(
            sim.context.current().duration_since(start).unwrap() < Duration::from_secs(120),
            "no set change"
        );
        sim.wait(Duration::from_millis(50)).await;
    };
    let mut expected: Vec<_> = [0, 1, 2, joiner]
        .iter()
        .map(|&i| sim.public[i].clone())
        .collect();
    expected.sort();
    let mut members: Vec<_> = set.members.iter().map(|(key, _)| key.clone()).collect();
    members.sort();
    assert_eq!(members, expected);
    let boundary = (1..=reference.head().height)
        .find(|&h| node::digest(&reference.stored_block(h).unwrap().block.hash()) == set.floor)
        .expect("the floor is an executed block");
    // Dev genesis epochs are 20 blocks.
    assert_eq!(
        (boundary + 1) % 20,
        0,
        "the set changes at an epoch's last block"
    );
    eprintln!("  set changed at height {boundary}");
    boundary
}

/// Starts node 4 from a snapshot of validator 0 (a new validator joins by state sync); returns
/// the snapshot's height.
async fn start_joiner(sim: &mut Sim) -> u64 {
    let snapshot = sim.nodes[0].as_ref().unwrap().state_snapshot().unwrap();
    sim.start_from(VALIDATORS, Some(&snapshot)).await;
    // Transactions below the sync height are not indexed on the joiner.
    sim.submitted.clear();
    snapshot.head.height
}

/// Asserts node 4 proposed blocks in `heights` and validator 3 none.
fn check_proposers(sim: &Sim, heights: std::ops::RangeInclusive<u64>) {
    let reference = sim.nodes[0].as_ref().unwrap();
    let proposers: Vec<AccountId> = heights
        .map(|h| reference.stored_block(h).unwrap().block.header.proposer)
        .collect();
    assert!(
        proposers.contains(&sim.keys[VALIDATORS].account_id()),
        "the new validator never proposed: {proposers:?}"
    );
    assert!(
        !proposers.contains(&sim.keys[3].account_id()),
        "the validator that left proposed after the boundary"
    );
}

#[test]
fn a_validator_set_change_at_an_epoch_boundary_hands_consensus_to_the_new_set() {
    run_seeds("set change", 10, |mut sim| async move {
        for i in 0..VALIDATORS {
            sim.start(i).await;
        }
        sim.submit(10);
        sim.run_until(3, Duration::from_secs(60)).await;
        let boundary = replace_validator_3_by_node_4(&mut sim).await;

        // Three of the new four are a quorum: the chain goes on before the joiner runs.
        while [0, 1, 2]
            .iter()
            .any(|&i| sim.nodes[i].as_ref().unwrap().head().height < boundary + 5)
        {
            sim.wait(Duration::from_millis(100)).await;
        }
        // The validator that left executed the boundary block and stopped there.
        assert_eq!(sim.nodes[3].as_ref().unwrap().head().height, boundary);
        sim.crash(3);

        let synced_at = start_joiner(&mut sim).await;
        sim.submit(20);
        let target = sim.min_height() + 12;
        sim.run_until(target, Duration::from_secs(300)).await;
        sim.check_safety_from(synced_at + 1);
        check_proposers(&sim, boundary + 1..=target);

        // The certificate kept for epoch 0's end proves the boundary block to epoch 0's set
        // only, and not once a byte changes.
        let reference = sim.nodes[0].as_ref().unwrap();
        let certificate = consensus::App::epoch_end(reference, 0).expect("kept");
        let floor = consensus::App::validator_set(reference).unwrap().floor;
        let epoch_0 = consensus::EpochSet {
            epoch: 0,
            floor: node::digest(&sim.genesis.hash()),
            members: sim.public[..VALIDATORS]
                .iter()
                .map(|key| (key.clone(), None))
                .collect(),
        };
        let mut rng = sim.context.child("rng");
        assert_eq!(
            consensus::check_finalization(&epoch_0, &certificate, &mut rng),
            Some(floor)
        );
        let epoch_1 = consensus::App::validator_set(reference).unwrap();
        assert_eq!(
            consensus::check_finalization(&epoch_1, &certificate, &mut rng),
            None
        );
        for i in [0, certificate.len() / 2, certificate.len() - 1] {
            let mut forged = certificate.clone();
            forged[i] ^= 1;
            assert_eq!(
                consensus::check_finalization(&epoch_0, &forged, &mut rng),
                None
            );
        }
        assert_eq!(
            consensus::check_finalization(&epoch_0, b"junk", &mut rng),
            None
        );
    });
}

#[test]
fn a_validator_offline_across_a_set_change_catches_up_from_the_epoch_end_certificate() {
    run_seeds("offline across a set change", 12, |mut sim| async move {
        for i in 0..VALIDATORS {
            sim.start(i).await;
        }
        sim.submit(10);
        sim.run_until(3, Duration::from_secs(60)).await;
        // Validator 2 goes down in epoch 0; 0, 1 and 3 finish the epoch without it.
        sim.crash(2);
        let boundary = replace_validator_3_by_node_4(&mut sim).await;
        sim.crash(3);
        // The new set is 0, 1, 2 and 4: with 2 down, the joiner completes the quorum.
        let synced_at = start_joiner(&mut sim).await;
        sim.submit(10);
        let height = sim.min_height();
        sim.run_until(height + 5, Duration::from_secs(300)).await;

        // Validator 2 restarts in epoch 0, whose engine no peer runs any more: a peer's
        // certificate for the boundary block brings it to epoch 1.
        assert!(sim.nodes[2].is_none());
        let before = sim.nodes[0].as_ref().unwrap().head().height;
        sim.start(2).await;
        sim.submit(10);
        let target = before + 10;
        sim.run_until(target, Duration::from_secs(300)).await;
        let rejoined = sim.nodes[2].as_ref().unwrap();
        assert_eq!(consensus::App::validator_set(rejoined).unwrap().epoch, 1);
        sim.check_safety_from(synced_at + 1);
        check_proposers(&sim, boundary + 1..=target);
        let proposers: Vec<AccountId> = (before..=target)
            .map(|h| rejoined.stored_block(h).unwrap().block.header.proposer)
            .collect();
        assert!(
            proposers.contains(&sim.keys[2].account_id()),
            "the rejoined validator never proposed again: {proposers:?}"
        );
    });
}

#[test]
fn a_proposer_of_wrong_state_roots_is_refused_and_blocked() {
    run_seeds("wrong state roots", 13, |mut sim| async move {
        sim.start_liar(0).await;
        for i in 1..VALIDATORS {
            sim.start(i).await;
        }
        sim.submit(20);
        sim.run_until(10, Duration::from_secs(300)).await;
        sim.check_safety();
        // None of its blocks made it, and every honest validator blocked it.
        let reference = sim.nodes[1].as_ref().unwrap();
        for h in 1..=reference.head().height {
            let block = reference.stored_block(h).unwrap().block;
            assert_ne!(
                block.header.proposer,
                sim.keys[0].account_id(),
                "height {h}"
            );
        }
        let blocked = sim.oracle.blocked().await.unwrap();
        for i in 1..VALIDATORS {
            assert!(
                blocked.contains(&(sim.public[i].clone(), sim.public[0].clone())),
                "validator {i} did not block the liar: {blocked:?}"
            );
        }
    });
}

/// Starts validator 0 as one of the library's byzantine voters over epoch 0's subchannel.
async fn start_byzantine_voter(sim: &mut Sim, kind: &str) {
    let scheme = sim.genesis_signer(0);
    let channels = sim.channels(0).await;
    let (muxer, mut votes) =
        Muxer::new(sim.context.child("mux"), channels.votes.0, channels.votes.1);
    muxer.start();
    let votes = votes.register(0).await.unwrap();
    let context = sim.context.child("byzantine");
    sim.running[0] = Some(match kind {
        "outdated" => mocks::outdated::Outdated::<_, _, Blake3>::new(
            context,
            mocks::outdated::Config {
                scheme,
                view_delta: commonware_consensus::types::ViewDelta::new(3),
            },
        )
        .start(votes),
        "impersonator" => mocks::impersonator::Impersonator::<_, _, Blake3>::new(
            context,
            mocks::impersonator::Config { scheme },
        )
        .start(votes),
        _ => mocks::reconfigurer::Reconfigurer::<_, _, Blake3>::new(
            context,
            mocks::reconfigurer::Config { scheme },
        )
        .start(votes),
    });
}

#[test]
fn replayed_forged_and_wrong_epoch_votes_leave_the_honest_three_unaffected() {
    for (kind, seed) in [("outdated", 14), ("impersonator", 15), ("reconfigurer", 16)] {
        run_seeds(kind, seed, move |mut sim| async move {
            start_byzantine_voter(&mut sim, kind).await;
            for i in 1..VALIDATORS {
                sim.start(i).await;
            }
            sim.submit(20);
            sim.run_until(10, Duration::from_secs(300)).await;
            sim.check_safety();
            let blocked = sim.oracle.blocked().await.unwrap();
            eprintln!("  {kind}: blocked {}", blocked.len());
            // Replayed votes of past views are ignored; votes that do not verify, or
            // are signed for another epoch, get their sender blocked by every validator.
            let penalized = blocked
                .iter()
                .filter(|(_, peer)| *peer == sim.public[0])
                .count();
            let expected = if kind == "outdated" {
                0
            } else {
                VALIDATORS - 1
            };
            assert_eq!(penalized, expected, "{kind}: {blocked:?}");
        });
    }
}
