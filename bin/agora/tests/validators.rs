//! Four `agora node` validators as real processes, each in a network namespace of its own
//! on a bridge the test makes: three start, the fourth joins later by state sync from
//! another's RPC; then a load of transfers, one validator SIGKILLed and restarted,
//! another cut off by downing its veth and later reconnected. Afterwards every node holds
//! the same blocks and state roots at every height, and every transaction any node reported
//! committed is committed on all of them.
//!
//! Without the rights to make namespaces (`ip netns add` fails), or with
//! `AGORA_TEST_LOOPBACK=1`, the nodes run on loopback and the cut-off validator is frozen
//! with SIGSTOP instead, which the test prints.
//!
//! A second test changes the set over real p2p on loopback: a funded account bonds and
//! registers its address with `agora wallet`, a validator withdraws, and after the epoch
//! boundary the newcomer (started by state sync) is needed for a quorum.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use agora_rpc::{wire, Client};
use agora_types::{ChainId, Hash};

use crate::{
    network::{agora, free_port, run_ok, signal},
    node_crash::stream_transfers,
};

const VALIDATORS: usize = 4;
const WAIT: Duration = Duration::from_secs(60);

/// Network namespaces and a bridge, removed on drop.
struct Namespaces {
    tag: String,
    subnet: u8,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

impl Namespaces {
    /// Makes a bridge in this namespace and one namespace per validator behind a veth.
    fn create() -> Option<Namespaces> {
        let pid = std::process::id();
        let ns = Namespaces {
            tag: format!("{:04x}", pid % 0xffff),
            subnet: u8::try_from(20 + pid % 200).unwrap_or(20),
        };
        let bridge = ns.bridge();
        let gateway = format!("10.77.{}.254/24", ns.subnet);
        let ok = ip(&["link", "add", &bridge, "type", "bridge"])
            && ip(&["addr", "add", &gateway, "dev", &bridge])
            && ip(&["link", "set", &bridge, "up"]);
        if !ok {
            return None;
        }
        for i in 0..VALIDATORS {
            let (name, host, inner) = (ns.name(i), ns.host_veth(i), format!("ag{}p{i}", ns.tag));
            let addr = format!("{}/24", ns.addr(i));
            let ok = ip(&["netns", "add", &name])
                && ip(&["link", "add", &host, "type", "veth", "peer", "name", &inner])
                && ip(&["link", "set", &inner, "netns", &name])
                && ip(&["link", "set", &host, "master", &bridge])
                && ip(&["link", "set", &host, "up"])
                && ip(&["-n", &name, "addr", "add", &addr, "dev", &inner])
                && ip(&["-n", &name, "link", "set", &inner, "up"])
                && ip(&["-n", &name, "link", "set", "lo", "up"]);
            if !ok {
                return None;
            }
        }
        Some(ns)
    }

    fn bridge(&self) -> String {
        format!("ag{}br", self.tag)
    }

    fn name(&self, i: usize) -> String {
        format!("agora-bft-{}-{i}", self.tag)
    }

    fn host_veth(&self, i: usize) -> String {
        format!("ag{}h{i}", self.tag)
    }

    fn addr(&self, i: usize) -> String {
        format!("10.77.{}.{}", self.subnet, i + 1)
    }

    /// Downs (or ups) validator `i`'s link to the bridge.
    fn set_link(&self, i: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        assert!(ip(&["link", "set", &self.host_veth(i), state]));
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for i in 0..VALIDATORS {
            ip(&["link", "del", &self.host_veth(i)]);
            ip(&["netns", "del", &self.name(i)]);
        }
        ip(&["link", "del", &self.bridge()]);
    }
}

/// Where the validators listen and how they are started.
struct Cluster {
    dir: PathBuf,
    genesis: PathBuf,
    keys: Vec<PathBuf>,
    accounts: Vec<String>,
    rpc: Vec<String>,
    p2p: Vec<String>,
    namespaces: Option<Namespaces>,
    children: Vec<Option<Child>>,
}

impl Cluster {
    fn start(&mut self, i: usize) {
        self.start_with(i, &[]);
    }

    fn start_with(&mut self, i: usize, extra: &[&str]) {
        let peers: Vec<String> = (0..VALIDATORS)
            .filter(|j| *j != i)
            .map(|j| format!("{}@{}", self.accounts[j], self.p2p[j]))
            .collect();
        let data = self.dir.join(format!("node-{i}"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("node-{i}.log")))
            .expect("log file");
        let mut command = match &self.namespaces {
            Some(ns) => {
                let mut command = Command::new("ip");
                command
                    .args(["netns", "exec", &ns.name(i)])
                    .arg(env!("CARGO_BIN_EXE_agora"));
                command
            }
            None => agora(),
        };
        command
            .args(["node", "--data-dir"])
            .arg(&data)
            .arg("--genesis")
            .arg(&self.genesis)
            .arg("--key")
            .arg(&self.keys[i])
            .args(["--rpc-listen", &self.rpc[i], "--p2p-listen", &self.p2p[i]])
            .args(["--peer", &peers.join(",")])
            .args(["--block-interval-ms", "50", "--idle-interval-ms", "500"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        self.children[i] = Some(command.spawn().expect("start agora node"));
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            signal(&child, "-KILL");
            let _ = child.wait();
        }
    }

    /// Cuts validator `i` off from the others (or reconnects it).
    fn cut(&mut self, i: usize, cut: bool) {
        match &self.namespaces {
            Some(ns) => ns.set_link(i, !cut),
            None => {
                let child = self.children[i].as_ref().expect("running");
                signal(child, if cut { "-STOP" } else { "-CONT" });
            }
        }
    }

    fn client(&self, i: usize) -> Client {
        Client::new(&format!("http://{}", self.rpc[i])).expect("client")
    }

    fn logs(&self) -> String {
        (0..self.children.len())
            .map(|i| {
                let text = std::fs::read_to_string(self.dir.join(format!("node-{i}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                format!(
                    "--- node {i}\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            if let Some(child) = self.children[i].as_ref() {
                signal(child, "-CONT");
            }
            self.kill(i);
        }
    }
}

/// RPC and p2p addresses on loopback for `n` nodes.
fn loopback_addresses(n: usize) -> (Vec<String>, Vec<String>) {
    (0..n)
        .map(|_| {
            (
                format!("127.0.0.1:{}", free_port()),
                format!("127.0.0.1:{}", free_port()),
            )
        })
        .unzip()
}

/// A follower process, killed on drop.
struct FollowerProcess(Child);

impl Drop for FollowerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn height(client: &Client) -> Option<u64> {
    client.head().await.ok().map(|head| head.height)
}

/// Waits until validator `i` reaches `target`.
async fn wait_height(cluster: &Cluster, i: usize, target: u64) {
    let client = cluster.client(i);
    let start = Instant::now();
    while height(&client).await.unwrap_or(0) < target {
        assert!(
            start.elapsed() < WAIT,
            "validator {i} did not reach height {target}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn init(dir: &Path) -> (PathBuf, Vec<PathBuf>, Vec<String>) {
    let genesis_dir = dir.join("genesis");
    let out = run_ok(
        agora()
            .args(["genesis", "init", "--validators", "4", "--accounts", "2"])
            .args(["--chain-id", "agora-bft", "--json", "--data-dir"])
            .arg(&genesis_dir),
    );
    let json: serde_json::Value = serde_json::from_str(&out).expect("genesis json");
    let accounts: Vec<String> = json["validators"]
        .as_array()
        .expect("validators")
        .iter()
        .map(|v| v.as_str().expect("account").to_owned())
        .collect();
    assert_eq!(accounts.len(), VALIDATORS);
    let keys = (0..VALIDATORS)
        .map(|i| match i {
            0 => genesis_dir.join("validator.key"),
            n => genesis_dir.join(format!("validator-{n}.key")),
        })
        .collect();
    (genesis_dir, keys, accounts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_survive_a_kill_and_a_cut_link_and_agree_on_every_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (genesis_dir, keys, accounts) = init(dir.path());
    // AGORA_TEST_LOOPBACK=1 runs the fallback without namespaces.
    let namespaces = if std::env::var_os("AGORA_TEST_LOOPBACK").is_some() {
        None
    } else {
        Namespaces::create()
    };
    let (rpc, p2p): (Vec<String>, Vec<String>) = match &namespaces {
        Some(ns) => (0..VALIDATORS)
            .map(|i| {
                (
                    format!("{}:26657", ns.addr(i)),
                    format!("{}:26656", ns.addr(i)),
                )
            })
            .unzip(),
        None => {
            eprintln!(
                "no network namespaces here: loopback, and SIGSTOP for the cut-off validator"
            );
            loopback_addresses(VALIDATORS)
        }
    };
    let mut cluster = Cluster {
        dir: dir.path().to_path_buf(),
        genesis: genesis_dir.join("genesis.json"),
        keys,
        accounts,
        rpc,
        p2p,
        namespaces,
        children: (0..VALIDATORS).map(|_| None).collect(),
    };
    // Three of four start; the fourth joins later by state sync from another's RPC.
    for i in 0..3 {
        cluster.start(i);
    }
    wait_height(&cluster, 1, 12).await;
    let sync_from = format!("http://{}", cluster.rpc[1]);
    cluster.start_with(3, &["--state-sync", &sync_from]);
    wait_height(&cluster, 3, 14).await;
    // The joined node has no blocks up to the snapshot's height.
    let joined = cluster.client(3);
    let joined_head = height(&joined).await.expect("height");
    let mut synced_at = 0;
    while synced_at < joined_head
        && joined
            .block(Some(synced_at + 1))
            .await
            .expect("block")
            .is_none()
    {
        synced_at += 1;
    }
    assert!(
        synced_at >= 12,
        "validator 3 replayed from genesis instead of syncing"
    );

    let sender = agora_rpc::keyfile::load(&genesis_dir.join("keys/dev-0.key")).expect("key");
    let receiver = agora_rpc::keyfile::load(&genesis_dir.join("keys/dev-1.key")).expect("key");
    let all = cluster
        .rpc
        .iter()
        .map(|addr| format!("http://{addr}"))
        .collect::<Vec<_>>()
        .join(",");
    let committed = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    // The load's client fails over between all four validators.
    let loader = tokio::spawn(stream_transfers(
        Client::new(&all).expect("client"),
        sender,
        receiver.account_id(),
        ChainId::new("agora-bft").expect("chain id"),
        Arc::clone(&committed),
        Arc::clone(&stop),
    ));

    // Kill the node the load's client talks to first: it fails over, and the chain
    // goes on with three of four.
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.kill(0);
    let at_kill = height(&cluster.client(1)).await.expect("height");
    wait_height(&cluster, 1, at_kill + 10).await;
    cluster.start(0);
    wait_height(&cluster, 0, at_kill + 10).await;

    // Cut validator 2 off; the other three go on; reconnected, it catches up.
    cluster.cut(2, true);
    let at_cut = height(&cluster.client(1)).await.expect("height");
    wait_height(&cluster, 1, at_cut + 10).await;
    cluster.cut(2, false);
    let now = height(&cluster.client(1)).await.expect("height");
    wait_height(&cluster, 2, now).await;

    stop.store(true, Ordering::Relaxed);
    loader.await.expect("load task");
    let committed: Vec<Hash> = committed
        .lock()
        .expect("lock")
        .iter()
        .map(|(hash, _)| *hash)
        .collect();
    assert!(
        committed.len() >= 20,
        "only {} transfers committed\n{}",
        committed.len(),
        cluster.logs()
    );

    // Every node reaches the same height and agrees on every block and state root.
    let top = height(&cluster.client(1)).await.expect("height") + 2;
    for i in 0..VALIDATORS {
        wait_height(&cluster, i, top).await;
    }
    let clients: Vec<Client> = (0..VALIDATORS).map(|i| cluster.client(i)).collect();
    for h in 1..=top {
        let mut first: Option<(String, String)> = None;
        for (i, client) in clients.iter().enumerate() {
            if i == 3 && h <= synced_at {
                continue;
            }
            let block = client
                .block(Some(h))
                .await
                .expect("block")
                .unwrap_or_else(|| panic!("validator {i} lacks block {h}"));
            let here = (block.hash.clone(), block.state_root.clone());
            match &first {
                None => first = Some(here),
                Some(first) => assert_eq!(first, &here, "validator {i} differs at height {h}"),
            }
        }
    }
    for hash in &committed {
        for (i, client) in clients.iter().enumerate() {
            let status = client.tx_status(hash).await.expect("tx status");
            assert_eq!(
                status.status,
                wire::TxState::Committed,
                "validator {i} lost committed transaction {hash}"
            );
        }
    }
    eprintln!(
        "{} transfers committed, {top} blocks agreed on by {VALIDATORS} validators, \
         one joined by state sync at height {synced_at} ({})",
        committed.len(),
        if cluster.namespaces.is_some() {
            "network namespaces"
        } else {
            "loopback"
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_validator_replaces_one_that_left_at_the_epoch_boundary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (genesis_dir, mut keys, mut accounts) = init(dir.path());
    // The newcomer: a funded dev account, not a genesis validator.
    let joiner = VALIDATORS;
    let joiner_key = genesis_dir.join("keys/dev-1.key");
    let joiner_account = agora_rpc::keyfile::load(&joiner_key)
        .expect("key")
        .account_id();
    keys.push(joiner_key.clone());
    accounts.push(joiner_account.to_string());
    let (rpc, p2p) = loopback_addresses(VALIDATORS + 1);
    let mut cluster = Cluster {
        dir: dir.path().to_path_buf(),
        genesis: genesis_dir.join("genesis.json"),
        keys,
        accounts,
        rpc,
        p2p,
        namespaces: None,
        children: (0..=VALIDATORS).map(|_| None).collect(),
    };
    for i in 0..VALIDATORS {
        cluster.start(i);
    }
    wait_height(&cluster, 0, 3).await;
    // A follower (no validator) of validator 1 sees the set change too.
    let follower_rpc = format!("127.0.0.1:{}", free_port());
    let mut follower = FollowerProcess(
        agora()
            .args(["node", "--data-dir"])
            .arg(dir.path().join("follower"))
            .arg("--genesis")
            .arg(&cluster.genesis)
            .args(["--rpc-listen", &follower_rpc])
            .args(["--follow", &format!("http://{}", cluster.rpc[1])])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start follower"),
    );

    let node = format!("http://{}", cluster.rpc[0]);
    let wallet = |key: &Path, args: &[&str]| {
        run_ok(
            agora()
                .arg("wallet")
                .args(args)
                .arg("--key")
                .arg(key)
                .args(["--node", &node]),
        )
    };
    wallet(&joiner_key, &["bond", "10000"]);
    wallet(&joiner_key, &["register-validator", &cluster.p2p[joiner]]);
    wallet(&cluster.keys[3].clone(), &["deregister-validator"]);

    // The set changes at the next epoch boundary (dev epochs are 20 blocks).
    let client = cluster.client(0);
    let start = Instant::now();
    loop {
        let validators = client.validators().await.expect("validators");
        let members: Vec<&str> = validators.iter().map(|v| v.account.as_str()).collect();
        if members.contains(&cluster.accounts[joiner].as_str()) {
            assert!(!members.contains(&cluster.accounts[3].as_str()));
            let registered = validators
                .iter()
                .find(|v| v.account == cluster.accounts[joiner])
                .and_then(|v| v.p2p.clone());
            assert_eq!(registered.as_deref(), Some(cluster.p2p[joiner].as_str()));
            break;
        }
        assert!(start.elapsed() < WAIT, "no set change\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let at_change = height(&client).await.expect("height");

    // The newcomer starts from a snapshot; the others learn its address from the ledger.
    cluster.start_with(joiner, &["--state-sync", &node]);
    wait_height(&cluster, joiner, at_change + 3).await;
    // The one that left, and one more: the remaining three need the newcomer's votes.
    cluster.kill(3);
    cluster.kill(2);
    let at_kill = height(&client).await.expect("height");
    wait_height(&cluster, 0, at_kill + 10).await;
    wait_height(&cluster, joiner, at_kill + 10).await;
    let mut proposed = false;
    for h in at_change + 1..=at_kill + 10 {
        let ours = client.block(Some(h)).await.expect("block").expect("block");
        let theirs = cluster.client(joiner).block(Some(h)).await.expect("block");
        if let Some(theirs) = theirs {
            assert_eq!(
                (&ours.hash, &ours.state_root),
                (&theirs.hash, &theirs.state_root)
            );
        }
        proposed |= ours.proposer == cluster.accounts[joiner];
        assert_ne!(
            ours.proposer, cluster.accounts[3],
            "a departed validator proposed"
        );
    }
    assert!(proposed, "the newcomer never proposed\n{}", cluster.logs());

    // The follower crossed the boundary on the certificate that ended epoch 0.
    let follower_client = Client::new(&format!("http://{follower_rpc}")).expect("client");
    let start = Instant::now();
    while height(&follower_client).await.unwrap_or(0) < at_kill + 10 {
        assert!(start.elapsed() < WAIT, "the follower did not follow");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for h in [at_change, at_change + 1, at_kill + 10] {
        let ours = client.block(Some(h)).await.expect("block").expect("block");
        let theirs = follower_client
            .block(Some(h))
            .await
            .expect("block")
            .expect("block");
        assert_eq!(
            (ours.hash, ours.state_root),
            (theirs.hash, theirs.state_root)
        );
    }
    signal(&follower.0, "-TERM");
    let _ = follower.0.wait();
    eprintln!("set changed by height {at_change}; the newcomer keeps a three-of-four quorum");
}
