"""A network of real `agora` processes on loopback for the benchmarks: a node, providers, a gateway.

Mirrors the Rust test harness (bin/agora/tests/network.rs): `agora genesis init`, `agora node`,
one `agora provider --rpc` per funded dev key (prices rising with the index), an API key from
`agora gateway add-key`, then `agora gateway`. With `model=` a GGUF file (for example the tiny
model from scripts/tiny-model.py) instead of the default model, the file is added to the genesis
as an active model, so the ledger governs it like any other.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

DEFAULT_MODEL = "SmolLM2-135M-Instruct"
DEFAULT_CID = "bafkr4ic7j6qtx7dn2sur7uaoekluvhcot3lcr7l5p4yhhgg56mbgbvvsym"
ROOT = Path(__file__).resolve().parent.parent


def binary():
    """The `agora` binary: $AGORA_BIN, else the release build in $CARGO_TARGET_DIR or target/."""
    if "AGORA_BIN" in os.environ:
        return os.environ["AGORA_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    return str(Path(target) / "release" / "agora")


def test_data():
    """The shared model cache the tests use (AGORA_TEST_DATA)."""
    return Path(os.environ.get("AGORA_TEST_DATA", str(Path.home() / ".cache/agora-test")))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc, check=lambda r: r.status_code == 200, timeout=300):
    """Waits until GET `url` passes `check`; fails at once if `proc` exits."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"process for {url} exited with {proc.returncode}")
        try:
            if check(httpx.get(url, timeout=1)):
                return
        except (httpx.HTTPError, ValueError, KeyError, IndexError, StopIteration):
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def make_tiny_model(out):
    """Writes the tiny random-weight model (scripts/tiny-model.py) to `out`."""
    source = test_data() / "blobs" / DEFAULT_CID
    subprocess.run([sys.executable, str(ROOT / "scripts/tiny-model.py"), str(source), str(out)],
                   check=True)
    return out


class Network:
    """Node, `providers` providers and a gateway as separate processes in a temporary folder."""

    def __init__(self, providers=3, model=None, model_name=None, credit="1000",
                 engine=("--context", "512", "--parallel", "8", "--threads", "1")):
        self.bin = binary()
        self.dir = Path(tempfile.mkdtemp(prefix="agora-bench-"))
        self.model = model
        self.model_name = model_name or DEFAULT_MODEL
        self.engine = list(engine)
        self.procs = {}
        self.logs = []
        try:
            self.start(providers, credit)
        except BaseException:
            self.close()
            raise

    def start(self, providers, credit):
        (self.dir / "blobs").mkdir()
        shutil.copy(test_data() / "blobs" / DEFAULT_CID, self.dir / "blobs" / DEFAULT_CID)
        chain = self.dir / "chain"
        self.run("genesis", "init", "--data-dir", chain, "--accounts", str(providers + 1))
        if self.model is not None:
            self.add_genesis_model(chain / "genesis.json")
        self.rpc_url = f"http://127.0.0.1:{free_port()}"
        self.spawn("node", "node", "--data-dir", chain, "--rpc-listen", self.rpc_url[7:])
        wait_http(self.rpc_url + "/health", self.procs["node"], timeout=60)
        self.provider_ports = [free_port() for _ in range(providers)]
        for index in range(providers):
            self.start_provider(index)
        for index in range(providers):
            self.wait_provider(index)
        self.api_key = self.run("gateway", "add-key", "--credit", credit, "--data-dir", self.dir,
                                "--rpc", self.rpc_url, "--key", chain / "keys/dev-0.key").strip()
        self.gateway_url = f"http://127.0.0.1:{free_port()}"
        self.spawn("gateway", "gateway", "--listen", self.gateway_url[7:], "--rpc", self.rpc_url,
                   "--data-dir", self.dir, "--key", chain / "keys/dev-0.key")
        wait_http(self.gateway_url + "/v1/models", self.procs["gateway"],
                  lambda r: self.serving(r.json()) == providers, timeout=60)

    def serving(self, models):
        """How many providers `/v1/models` lists for this network's model."""
        return next(m["providers"] for m in models["data"] if m["id"] == self.model_name)

    def add_genesis_model(self, path):
        """Makes `self.model` an active model of the genesis under `self.model_name`."""
        cid = self.run("model", "import", self.model, "--data-dir", self.dir).split()[0]
        genesis = json.loads(path.read_text())
        genesis["models"].append({
            "cid": cid, "name": self.model_name, "architecture": "llama", "quantization": "F32",
            "context_length": 8192, "license": "apache-2.0", "size": Path(self.model).stat().st_size,
        })
        path.write_text(json.dumps(genesis, indent=2))

    def run(self, *args):
        out = subprocess.run([self.bin, *map(str, args)], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"agora {' '.join(map(str, args))}: {out.stderr}")
        return out.stdout

    def spawn(self, name, *args):
        log = open(self.dir / f"{name}.log", "w")
        self.logs.append(log)
        self.procs[name] = subprocess.Popen([self.bin, *map(str, args)], stdout=subprocess.DEVNULL,
                                            stderr=log)

    def accounts(self):
        """Each provider's ledger account, by index (from the registry's endpoints)."""
        res = httpx.post(self.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "providers",
                                             "params": None}, timeout=10)
        by_endpoint = {p["endpoint"]: p["operator"] for p in res.json()["result"]}
        return [by_endpoint[self.provider_url(i)] for i in range(len(self.provider_ports))]

    def provider_url(self, index):
        return f"http://127.0.0.1:{self.provider_ports[index]}"

    def start_provider(self, index):
        """Starts (or restarts) provider `index` (key dev-{index+1}, price 0.{index+1} AGR/M in)."""
        n = index + 1
        model = ["--model", self.model, "--model-name", self.model_name] if self.model else []
        self.spawn(f"provider-{index}", "provider", "--listen", self.provider_url(index)[7:],
                   "--data-dir", self.dir, "--rpc", self.rpc_url,
                   "--key", self.dir / f"chain/keys/dev-{n}.key", "--price-in", f"0.{n}",
                   "--price-out", f"0.{2 * n}", "--settle-interval-ms", "1000", *model, *self.engine)

    def wait_provider(self, index):
        wait_http(self.provider_url(index) + "/health", self.procs[f"provider-{index}"])

    def kill_provider(self, index):
        """SIGKILLs provider `index`: no shutdown, no redeem, connections reset."""
        proc = self.procs.pop(f"provider-{index}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def close(self):
        """Stops everything, roles before the node, and removes the folder."""
        order = [n for n in self.procs if n != "node"] + ["node"]
        for name in order:
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for log in self.logs:
            log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
