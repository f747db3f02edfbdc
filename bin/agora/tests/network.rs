//! A network of real processes on loopback: `agora node`, providers, verifiers and a gateway.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use agora_rpc::Client;

/// A free loopback port.
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("addr").port()
}

/// The default model in the shared test cache (`AGORA_TEST_DATA`), fetched once.
pub(crate) fn default_model() -> PathBuf {
    agora_store::default_model::ensure_shared(&mut |_, _| {}).expect("default model")
}

/// Puts the default model into `data/blobs` from the shared test cache.
pub(crate) fn seed_model(data: &Path) {
    let path = default_model();
    let blobs = agora_store::BlobStore::open(data.join("blobs")).expect("open the data store");
    blobs
        .import_file(
            &path,
            Some(agora_store::default_model::cid()),
            &mut |_, _| {},
        )
        .expect("copy the model");
}

/// GET `url` as JSON.
pub(crate) async fn get_json(http: &reqwest::Client, url: String) -> serde_json::Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// The `agora` binary under test.
pub(crate) fn agora() -> Command {
    Command::new(env!("CARGO_BIN_EXE_agora"))
}

/// Runs a one-shot command, asserting success; returns its stdout.
pub(crate) fn run_ok(command: &mut Command) -> String {
    let output = command.output().expect("run the command");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A log file in `dir` for a child's stderr (shown when a test fails).
fn log_file(dir: &Path, name: &str) -> Stdio {
    std::fs::File::create(dir.join(name)).map_or(Stdio::null(), Stdio::from)
}

/// Sends `signal` (e.g. `-KILL`) to a process.
pub(crate) fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} failed");
}

/// Waits for a child to exit.
pub(crate) fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "process did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One provider process and how to start it again.
pub(crate) struct ProviderProcess {
    /// The running process, if any.
    pub(crate) child: Option<Child>,
    /// Its port.
    pub(crate) port: u16,
    /// Its account.
    pub(crate) account: String,
    key: PathBuf,
    price_in: String,
    price_out: String,
    /// How often it redeems and commits, in ms (from its next start).
    pub(crate) settle_ms: u64,
    /// More flags for `agora provider` (a cheat, another model).
    pub(crate) extra_args: Vec<String>,
}

/// One verifier process.
pub(crate) struct VerifierProcess {
    /// The running process.
    pub(crate) child: Child,
    /// Its base URL.
    pub(crate) url: String,
    /// Its account.
    pub(crate) account: String,
}

/// Node, providers, verifiers and gateway, killed on drop.
pub(crate) struct Network {
    /// Temporary folder holding everything.
    pub(crate) dir: tempfile::TempDir,
    /// The node's RPC URL.
    pub(crate) rpc_url: String,
    /// The gateway's base URL (no `/v1`).
    pub(crate) gateway_url: String,
    /// The client's API key.
    pub(crate) api_key: String,
    node: Child,
    /// The providers, by index (dev-1, dev-2, …).
    pub(crate) providers: Vec<ProviderProcess>,
    /// The verifiers (the dev accounts after the providers').
    pub(crate) verifiers: Vec<VerifierProcess>,
    gateway: Option<Child>,
    gateway_port: u16,
    gateway_args: Vec<String>,
}

impl Network {
    /// Starts a node and `providers` providers (prices rising with the index), registers them,
    /// issues an API key with `credit` AGR and starts the gateway.
    pub(crate) async fn start(providers: usize, credit: &str) -> Network {
        Network::start_with(vec![Vec::new(); providers], credit).await
    }

    /// Like [`Network::start`], with one provider per entry of `provider_args`, each started
    /// with those extra flags.
    pub(crate) async fn start_with(provider_args: Vec<Vec<String>>, credit: &str) -> Network {
        Network::start_full(provider_args, 0, Vec::new(), credit).await
    }

    /// Like [`Network::start_with`], with `verifiers` verifiers registered before the gateway
    /// starts, and the gateway started with `gateway_args`.
    pub(crate) async fn start_full(
        provider_args: Vec<Vec<String>>,
        verifiers: usize,
        gateway_args: Vec<String>,
        credit: &str,
    ) -> Network {
        let providers = provider_args.len();
        let dir = tempfile::tempdir().unwrap();
        seed_model(dir.path());
        let chain = dir.path().join("chain");
        run_ok(
            agora()
                .args(["genesis", "init", "--data-dir"])
                .arg(&chain)
                .args(["--accounts", &(providers + verifiers + 1).to_string()]),
        );
        let rpc_port = free_port();
        let rpc_url = format!("http://127.0.0.1:{rpc_port}");
        let node = agora()
            .args(["node", "--data-dir"])
            .arg(&chain)
            .args(["--rpc-listen", &format!("127.0.0.1:{rpc_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let rpc = Client::new(&rpc_url).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while rpc.head().await.is_err() {
            assert!(Instant::now() < deadline, "node did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut list = Vec::new();
        for (index, extra_args) in (1..=providers).zip(provider_args) {
            let key = chain.join("keys").join(format!("dev-{index}.key"));
            let account = agora_rpc::keyfile::load(&key)
                .unwrap()
                .account_id()
                .to_string();
            list.push(ProviderProcess {
                child: None,
                port: free_port(),
                account,
                key,
                price_in: format!("0.{index}"),
                price_out: format!("0.{}", index * 2),
                settle_ms: 1000,
                extra_args,
            });
        }
        let gateway_port = free_port();
        let mut network = Network {
            rpc_url,
            gateway_url: format!("http://127.0.0.1:{gateway_port}"),
            api_key: String::new(),
            node,
            providers: list,
            verifiers: Vec::new(),
            gateway: None,
            gateway_port,
            gateway_args,
            dir,
        };
        for index in 0..providers {
            network.start_provider(index);
        }
        for index in 0..providers {
            network.wait_provider(index).await;
        }
        for index in 0..verifiers {
            network.start_verifier(providers + 1 + index).await;
        }
        let issued = run_ok(
            agora()
                .args(["gateway", "add-key", "--credit", credit, "--data-dir"])
                .arg(network.dir.path())
                .args(["--rpc", &network.rpc_url, "--key"])
                .arg(chain.join("keys").join("dev-0.key")),
        );
        network.api_key = issued.trim().to_owned();
        network.start_gateway().await;
        network
    }

    /// Starts the gateway and waits until it lists every running provider.
    pub(crate) async fn start_gateway(&mut self) {
        let chain = self.dir.path().join("chain");
        let child = agora()
            .args([
                "gateway",
                "--listen",
                &format!("127.0.0.1:{}", self.gateway_port),
            ])
            .args(["--rpc", &self.rpc_url, "--data-dir"])
            .arg(self.dir.path())
            .arg("--key")
            .arg(chain.join("keys").join("dev-0.key"))
            .args(&self.gateway_args)
            .stdout(Stdio::null())
            .stderr(log_file(self.dir.path(), "gateway.log"))
            .spawn()
            .unwrap();
        self.gateway = Some(child);
        let http = reqwest::Client::new();
        let want = self.providers.len() as u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(res) = http
                .get(format!("{}/v1/models", self.gateway_url))
                .send()
                .await
            {
                let body: serde_json::Value = res.json().await.unwrap_or_default();
                if body["data"][0]["providers"].as_u64() == Some(want) {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not list the providers"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Starts a verifier with the dev key `dev-{key_index}` and waits until it is registered.
    async fn start_verifier(&mut self, key_index: usize) {
        let key = self
            .dir
            .path()
            .join("chain/keys")
            .join(format!("dev-{key_index}.key"));
        let account = agora_rpc::keyfile::load(&key)
            .unwrap()
            .account_id()
            .to_string();
        let port = free_port();
        let name = format!("verifier-{}.log", self.verifiers.len());
        let mut child = agora()
            .args(["verifier", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(["--rpc", &self.rpc_url, "--key"])
            .arg(&key)
            .args(["--threads", "1", "--poll-interval-ms", "300"])
            .stdout(Stdio::null())
            .stderr(log_file(self.dir.path(), &name))
            .spawn()
            .unwrap();
        let rpc = self.rpc();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let registered = rpc.verifiers().await.unwrap_or_default();
            if registered.iter().any(|v| v.account == account) {
                break;
            }
            if child.try_wait().unwrap().is_some() {
                let log = std::fs::read_to_string(self.dir.path().join(&name)).unwrap_or_default();
                panic!("verifier exited: {log}");
            }
            assert!(Instant::now() < deadline, "verifier did not register");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.verifiers.push(VerifierProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
            account,
        });
    }

    /// Starts (or restarts) provider `index`.
    pub(crate) fn start_provider(&mut self, index: usize) {
        let p = &mut self.providers[index];
        let mut command = agora();
        command.args(["provider", "--listen", &format!("127.0.0.1:{}", p.port)]);
        // A provider given its own `--data-dir` keeps its own blob store.
        if !p.extra_args.iter().any(|a| a == "--data-dir") {
            command.arg("--data-dir").arg(self.dir.path());
        }
        let child = command
            .args(["--rpc", &self.rpc_url, "--key"])
            .arg(&p.key)
            .args(["--price-in", &p.price_in, "--price-out", &p.price_out])
            .args(["--context", "512", "--parallel", "8", "--threads", "1"])
            .args(["--settle-interval-ms", &p.settle_ms.to_string()])
            .args(&p.extra_args)
            .stdout(Stdio::null())
            .stderr(log_file(self.dir.path(), &format!("provider-{index}.log")))
            .spawn()
            .unwrap();
        p.child = Some(child);
    }

    /// Waits until provider `index` answers `/health`.
    pub(crate) async fn wait_provider(&mut self, index: usize) {
        let url = format!("http://127.0.0.1:{}/health", self.providers[index].port);
        let deadline = Instant::now() + Duration::from_secs(120);
        while reqwest::get(&url).await.is_err() {
            let child = self.providers[index].child.as_mut().unwrap();
            if child.try_wait().unwrap().is_some() {
                let log = self.dir.path().join(format!("provider-{index}.log"));
                let log = std::fs::read_to_string(log).unwrap_or_default();
                panic!("provider {index} exited: {log}");
            }
            assert!(Instant::now() < deadline, "provider {index} did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILLs provider `index`.
    pub(crate) fn kill_provider(&mut self, index: usize) {
        if let Some(mut child) = self.providers[index].child.take() {
            signal(&child, "-KILL");
            wait_exit(&mut child, Duration::from_secs(10));
        }
    }

    /// Stops provider `index` with SIGTERM (it redeems and commits first).
    pub(crate) fn stop_provider(&mut self, index: usize) {
        if let Some(mut child) = self.providers[index].child.take() {
            signal(&child, "-TERM");
            let status = wait_exit(&mut child, Duration::from_secs(60));
            assert!(status.success(), "provider {index}: {status}");
        }
    }

    /// Sends `amount` from the funded dev account `dev-0` to `to`.
    pub(crate) async fn fund(&self, to: agora_types::AccountId, amount: agora_types::Amount) {
        let funder = self.dir.path().join("chain/keys/dev-0.key");
        let funder = agora_rpc::keyfile::load(&funder).unwrap();
        let status = self
            .rpc()
            .sign_and_submit(
                &funder,
                agora_types::TxBody::Transfer { to, amount },
                None,
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        assert_eq!(status.success, Some(true), "{status:?}");
    }

    /// A ledger client.
    pub(crate) fn rpc(&self) -> Client {
        Client::new(&self.rpc_url).unwrap()
    }

    /// A chat completion request to the gateway.
    pub(crate) fn chat(
        &self,
        http: &reqwest::Client,
        body: serde_json::Value,
    ) -> reqwest::RequestBuilder {
        http.post(format!("{}/v1/chat/completions", self.gateway_url))
            .bearer_auth(&self.api_key)
            .json(&body)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(log) = std::fs::read_to_string(self.dir.path().join("gateway.log")) {
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!(
                    "--- gateway log (last lines, newest first) ---\n{}",
                    tail.join("\n")
                );
            }
        }
        let mut children: Vec<&mut Child> = self
            .providers
            .iter_mut()
            .filter_map(|p| p.child.as_mut())
            .collect();
        children.extend(self.verifiers.iter_mut().map(|v| &mut v.child));
        if let Some(g) = self.gateway.as_mut() {
            children.push(g);
        }
        children.push(&mut self.node);
        for child in children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
