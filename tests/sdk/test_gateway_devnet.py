"""The official OpenAI Python SDK against `agora devnet` (the README's first command): a ledger
node, three paid providers, three verifiers and the gateway. Checks that the money adds up (the
providers' balances rise by exactly what they redeemed, and the client's credit falls by what
they redeemed from the gateway's channels; the verifiers' paid probes are the rest) and that a
receipt verifies against the chain with `agora receipt verify`.

Set AGORA_BIN to the `agora` binary; AGORA_TEST_DATA to the folder holding the default model.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import openai
import pytest

MODEL = "SmolLM2-135M-Instruct"
CID = "bafkr4ic7j6qtx7dn2sur7uaoekluvhcot3lcr7l5p4yhhgg56mbgbvvsym"
CREDIT = 100 * 10**9  # the devnet key's credit, in base units


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Devnet:
    def __init__(self, data: Path):
        self.data = data
        self.port, self.rpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.rpc_url = f"http://127.0.0.1:{self.rpc_port}"
        self.proc = None

    def rpc(self, method, params=None):
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        res = httpx.post(self.rpc_url, json=body, timeout=10).json()
        assert "error" not in res, res
        return res["result"]

    def wallet(self):
        return json.loads((self.data / "devnet/gateway/wallet.json").read_text())


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    binary = os.environ["AGORA_BIN"]
    cache = Path(os.environ.get("AGORA_TEST_DATA", str(Path.home() / ".cache/agora-test")))
    data = tmp_path_factory.mktemp("devnet")
    (data / "blobs").mkdir()
    shutil.copy(cache / "blobs" / CID, data / "blobs" / CID)
    net = Devnet(data)
    net.proc = subprocess.Popen(
        [binary, "devnet", "--data-dir", str(data), "--listen", f"127.0.0.1:{net.port}",
         "--rpc-listen", f"127.0.0.1:{net.rpc_port}", "--provider-port", "0", "--verifier-port", "0",
         "--context", "1024", "--parallel", "4"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline:
        assert net.proc.poll() is None, "devnet exited during start-up"
        key_file = data / "devnet/api-key"
        try:
            models = httpx.get(f"{net.url}/v1/models", timeout=1).json()["data"]
            if key_file.exists() and models and models[0]["providers"] == 3:
                break
        except (httpx.HTTPError, KeyError, IndexError):
            pass
        time.sleep(0.2)
    else:
        net.proc.kill()
        pytest.fail("devnet did not come up")
    net.api_key = (data / "devnet/api-key").read_text().strip()
    yield net
    net.proc.send_signal(signal.SIGTERM)
    assert net.proc.wait(timeout=120) == 0, "devnet did not shut down cleanly on SIGTERM"


@pytest.fixture(scope="module")
def client(devnet):
    return openai.OpenAI(base_url=f"{devnet.url}/v1", api_key=devnet.api_key)


def books(devnet):
    """Per provider: (balance, nonce, total redeemed to it), and the total redeemed from
    channels the gateway pays (not the verifiers' probe channels), read so that no provider
    transaction landed between the reads (every redemption bumps its payee's nonce)."""
    verifiers = {v["account"] for v in devnet.rpc("verifiers")}

    def accounts():
        out = {}
        for provider in devnet.rpc("providers"):
            account = devnet.rpc("account", {"address": provider["operator"]})
            out[provider["operator"]] = (int(account["balance"]), account["nonce"])
        return out

    while True:
        first = accounts()
        channels = devnet.rpc("channels", {})
        second = accounts()
        if first == second:
            break
    providers = {
        operator: (balance, nonce, sum(int(c["redeemed"]) for c in channels if c["payee"] == operator))
        for operator, (balance, nonce) in second.items()
    }
    from_gateway = sum(int(c["redeemed"]) for c in channels if c["payer"] not in verifiers)
    return providers, from_gateway


def test_paid_chat_through_the_gateway_adds_up_and_the_receipt_verifies(devnet, client, tmp_path):
    before, redeemed_before = books(devnet)
    assert len(before) == 3

    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=16,
        temperature=0,
    )
    receipt_id = raw.headers["x-agora-receipt"]
    res = raw.parse()
    assert res.choices[0].message.content.strip()
    assert res.usage.total_tokens == res.usage.prompt_tokens + res.usage.completion_tokens

    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Count to five."}],
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text.strip()
    assert usage is not None and usage.completion_tokens >= 1

    # Providers redeem every couple of seconds: wait until the chain holds every charge.
    deadline = time.time() + 60
    while True:
        wallet = devnet.wallet()
        spent = CREDIT - next(iter(wallet["keys"].values()))["credit"]
        redeemed = books(devnet)[1] - redeemed_before
        if spent > 0 and redeemed == spent:
            break
        assert time.time() < deadline, f"redeemed {redeemed} != spent {spent}"
        time.sleep(0.5)

    fee = int(devnet.rpc("params")["min_fee"])
    after, _ = books(devnet)
    for operator, (balance, nonce, redeemed) in after.items():
        old_balance, old_nonce, old_redeemed = before[operator]
        # Each provider transaction (redeem, receipt commit) burns the minimum fee.
        assert balance - old_balance == redeemed - old_redeemed - fee * (nonce - old_nonce), operator

    # The receipt: signed, in its epoch's Merkle root, and that root is on the chain.
    deadline = time.time() + 90
    while True:
        doc = httpx.get(f"{devnet.url}/v1/receipts/{receipt_id}", timeout=10).json()
        if doc.get("inclusion"):
            break
        assert time.time() < deadline, "the receipt's epoch was never committed"
        time.sleep(1)
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(doc))
    binary = os.environ["AGORA_BIN"]
    ok = subprocess.run([binary, "receipt", "verify", str(path), "--rpc", devnet.rpc_url],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "is valid" in ok.stdout

    doc["receipt"]["completion_tokens"] += 1
    path.write_text(json.dumps(doc))
    bad = subprocess.run([binary, "receipt", "verify", str(path), "--rpc", devnet.rpc_url],
                         capture_output=True, text=True)
    assert bad.returncode != 0


def test_unknown_key_and_missing_payment_are_refused(devnet):
    bad = openai.OpenAI(base_url=f"{devnet.url}/v1", api_key="sk-not-issued", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    res = httpx.post(f"{devnet.url}/v1/chat/completions",
                     json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    assert res.status_code == 402
    assert "payment-required" in res.headers
