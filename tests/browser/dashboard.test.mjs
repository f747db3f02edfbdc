// The gateway's dashboard in a real browser: Debian's chromium driven by playwright-core,
// against `agora devnet` run as a real process (a node, three providers and a gateway).
//
// Checks: the network page shows a rising height; the providers table lists the three devnet
// providers; the playground streams an answer and shows its receipt, whose checks pass; a
// proposal submitted with `agora gov propose` appears on the governance page; the receipt's
// inclusion proof and on-chain root check out once its epoch is committed; a second gateway
// whose node goes away shows "ledger unreachable" and recovers when it comes back. Throughout,
// the page requests nothing but its gateway, every JSON route it uses is in /openapi.json, and
// the console stays free of errors. Screenshots of each page (laptop and phone widths) go to
// $AGORA_BROWSER_OUT, or a temporary folder printed at the start.
//
// Env: AGORA_BIN (the `agora` binary), AGORA_TEST_DATA (folder whose blobs/ holds the default
// model, default ~/.cache/agora-test), CHROMIUM (default /usr/bin/chromium).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const CID = "bafkr4ic7j6qtx7dn2sur7uaoekluvhcot3lcr7l5p4yhhgg56mbgbvvsym";
const BIN = path.resolve(process.env.AGORA_BIN ?? path.join(process.env.CARGO_TARGET_DIR ?? "target", "release/agora"));
const CACHE = process.env.AGORA_TEST_DATA ?? path.join(os.homedir(), ".cache/agora-test");
const OUT = process.env.AGORA_BROWSER_OUT ?? fs.mkdtempSync(path.join(os.tmpdir(), "agora-browser-"));
fs.mkdirSync(OUT, { recursive: true });
const LAPTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };

const children = [];
let devnet; // { url, rpcUrl, data, apiKey }
let browser;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts a process whose output goes to a log file under OUT. */
function start(name, args) {
  const log = fs.openSync(path.join(OUT, `${name}.log`), "w");
  const child = spawn(BIN, args, { stdio: ["ignore", log, log] });
  child.exitCode_ = null;
  child.on("exit", (code, signal) => { child.exitCode_ = code ?? signal; });
  children.push(child);
  return child;
}

/** SIGTERM, then up to `ms` for the process to exit, then SIGKILL. */
async function stop(child, ms = 60_000) {
  if (child.exitCode_ !== null) return child.exitCode_;
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal)));
  child.kill("SIGTERM");
  const result = await Promise.race([exited, sleep(ms).then(() => "timeout")]);
  if (result === "timeout") {
    child.kill("SIGKILL");
    await exited;
  }
  return result;
}

async function getJSON(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return res.json();
}

async function rpc(method, params = null) {
  const res = await fetch(devnet.rpcUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    signal: AbortSignal.timeout(5000),
  });
  const body = await res.json();
  assert.equal(body.error, undefined, JSON.stringify(body.error));
  return body.result;
}

/** Polls `probe` until it returns a truthy value or `ms` pass. */
async function until(what, ms, probe) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch {
      // Not up yet.
    }
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await sleep(250);
  }
}

/** A page that records every request and console error. */
async function openPage(context, origins) {
  const page = await context.newPage();
  page.requests = [];
  page.problems = [];
  page.on("request", (req) => page.requests.push({ url: req.url(), type: req.resourceType() }));
  page.on("console", (msg) => {
    if (msg.type() === "error") page.problems.push(`console: ${msg.text()}`);
  });
  page.on("pageerror", (err) => page.problems.push(`page error: ${err.message}`));
  page.origins = origins;
  return page;
}

async function shoot(page, name) {
  await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });
}

/** The page's requests all went to its gateway, and every JSON route is documented. */
async function checkRequests(page, openapi) {
  const templates = Object.keys(openapi.paths).map((p) => [p, new RegExp(`^${p.replace(/\{[^}]+\}/g, "[^/]+")}$`)]);
  for (const { url, type } of page.requests) {
    if (url.startsWith("data:")) continue;
    const parsed = new URL(url);
    assert.ok(page.origins.includes(parsed.origin), `the page requested ${url}, outside its gateway`);
    if (type === "fetch" || type === "xhr") {
      assert.ok(templates.some(([, re]) => re.test(parsed.pathname)), `${parsed.pathname} is not in /openapi.json`);
    }
  }
  assert.deepEqual(page.problems, [], "console errors");
}

before(async () => {
  console.log(`# screenshots and logs in ${OUT}`);
  assert.ok(fs.existsSync(BIN), `no agora binary at ${BIN} (set AGORA_BIN)`);
  const data = fs.mkdtempSync(path.join(os.tmpdir(), "agora-devnet-"));
  fs.mkdirSync(path.join(data, "blobs"));
  fs.copyFileSync(path.join(CACHE, "blobs", CID), path.join(data, "blobs", CID));
  const [port, rpcPort] = [await freePort(), await freePort()];
  devnet = { data, url: `http://127.0.0.1:${port}`, rpcUrl: `http://127.0.0.1:${rpcPort}` };
  devnet.proc = start("devnet", ["devnet", "--data-dir", data, "--listen", `127.0.0.1:${port}`,
    "--rpc-listen", `127.0.0.1:${rpcPort}`, "--provider-port", "0", "--verifier-port", "0", "--context", "1024", "--parallel", "4"]);
  const keyFile = path.join(data, "devnet/api-key");
  await until("the devnet", 300_000, async () => {
    assert.equal(devnet.proc.exitCode_, null, "devnet exited during start-up");
    const models = await getJSON(`${devnet.url}/v1/models`);
    return fs.existsSync(keyFile) && models.data[0]?.providers === 3;
  });
  devnet.apiKey = fs.readFileSync(keyFile, "utf8").trim();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
});

after(async () => {
  await browser?.close();
  const codes = [];
  for (const child of children.reverse()) codes.push(await stop(child));
  if (devnet?.data) fs.rmSync(devnet.data, { recursive: true, force: true });
  console.log(`# processes exited with ${JSON.stringify(codes)}`);
});

test("the dashboard shows the devnet, streams a paid answer with its receipt and lists a new proposal", { timeout: 420_000 }, async () => {
  const openapi = await getJSON(`${devnet.url}/openapi.json`);
  const context = await browser.newContext({ viewport: LAPTOP });
  const page = await openPage(context, [devnet.url]);

  // Network: the height rises.
  await page.goto(`${devnet.url}/#/network`);
  const heightOf = async () => Number((await page.textContent("#net-height")).replace(/,/g, ""));
  const first = await until("a height", 15_000, async () => (await heightOf()) > 0 && heightOf());
  await until("a rising height", 15_000, async () => (await heightOf()) > first);
  await page.waitForFunction(() => document.querySelector("#net-validators").textContent === "1");
  assert.match(await page.textContent("#net-supply"), /AGR$/);
  await shoot(page, "network");

  // Providers: the three devnet providers.
  const operators = (await rpc("providers")).map((p) => p.operator).sort();
  assert.equal(operators.length, 3);
  await page.click('nav a[href="#/providers"]');
  await page.waitForFunction(() => document.querySelectorAll("#providers-body tr[data-account]").length === 3);
  const listed = await page.$$eval("#providers-body tr[data-account]", (rows) => rows.map((r) => r.dataset.account).sort());
  assert.deepEqual(listed, operators);
  const text = await page.textContent("#providers-body");
  assert.match(text, /SmolLM2-135M-Instruct/);
  assert.match(text, /healthy/);
  await shoot(page, "providers");

  // Playground: stream an answer, cheapest provider first, and show its receipt.
  await page.click('nav a[href="#/playground"]');
  await page.waitForSelector("#play-model option", { state: "attached" });
  await page.fill("#play-key", devnet.apiKey);
  await page.selectOption("#play-sort", "price");
  await page.fill("#play-max-tokens", "24");
  await page.fill("#play-prompt", "Name three colours.");
  await page.click("#play-send");
  await page.waitForSelector("#play-receipt", { timeout: 120_000 });
  const answer = await page.textContent("#play-output");
  assert.ok(answer.trim().length > 0, "no answer streamed");
  const result = await page.textContent("#play-result");
  assert.match(result, /prompt \+ \d+ completion/);
  assert.match(result, /AGR/);
  const receiptId = (await page.textContent("#play-receipt")).trim();
  assert.match(receiptId, /^[0-9a-f]{64}$/);
  // Sorted by price: the cheapest devnet provider served it.
  const cheapest = (await rpc("providers")).sort((a, b) => Number(BigInt(a.models[0].price_in) - BigInt(b.models[0].price_in)))[0];
  assert.match(result, new RegExp(cheapest.operator.slice(0, 10)));
  await shoot(page, "playground");

  // The receipt: its signature and transcript check out here.
  await page.click("#play-receipt");
  await page.waitForFunction(() => document.querySelectorAll("#receipt-checks li").length === 4);
  const checks = await page.textContent("#receipt-checks");
  assert.match(checks, /Signature: signed by the provider/);
  assert.match(checks, /Transcript: request and answer hash/);
  await shoot(page, "receipt");

  // The provider that served it lists it in its history.
  await page.click("#receipt-fields a[href^='#/providers/']");
  await page.waitForFunction((id) => document.querySelector("#provider-receipts").textContent.includes(id.slice(0, 8)), receiptId);
  await shoot(page, "provider");

  // Models and receipts.
  await page.click('nav a[href="#/models"]');
  await page.waitForFunction(() => document.querySelector("#models-body").textContent.includes("SmolLM2-135M-Instruct"));
  await page.waitForFunction(() => /[1-9]\d* req/.test(document.querySelector("#models-body").textContent));
  await shoot(page, "models");
  await page.click('nav a[href="#/receipts"]');
  await page.waitForFunction((id) => document.querySelector("#receipts-body").textContent.includes(id.slice(0, 8)), receiptId);
  // The devnet's three verifiers, as the ledger lists them, and the gateway's sampling.
  await page.waitForFunction(() => document.querySelectorAll("#verifiers-body tr").length === 3 &&
    document.querySelector("#verifiers-body").textContent.split("active").length === 4);
  assert.match(await page.textContent("#verify-summary"), /transcripts sent to verifiers/);
  await shoot(page, "receipts");

  // Governance: a proposal submitted with the CLI appears.
  const title = `Dashboard test proposal ${Date.now()}`;
  execFileSync(BIN, ["gov", "--key", path.join(devnet.data, "devnet/keys/dev-0.key"), "--node", devnet.rpcUrl,
    "propose", "text", title], { timeout: 60_000, stdio: ["ignore", "pipe", "pipe"] });
  await page.click('nav a[href="#/governance"]');
  await page.waitForFunction((t) => document.querySelector("#gov-body").textContent.includes(t), title, { timeout: 15_000 });
  // Dev votes last 10 blocks, so by now it may be voting or already closed without quorum.
  assert.match(await page.textContent("#gov-body"), /voting|noquorum/);
  await shoot(page, "governance");

  // Once the provider commits the receipt's epoch, its proof and on-chain root check out too.
  await page.goto(`${devnet.url}/#/receipts/${receiptId}`);
  await page.waitForFunction(() => document.querySelectorAll("#receipt-checks li.check.ok").length === 4, null, { timeout: 90_000 });
  assert.match(await page.textContent("#receipt-checks"), /committed at height \d+, matches the proof/);
  await shoot(page, "receipt-verified");

  // Every page at phone width.
  await page.setViewportSize(PHONE);
  for (const name of ["network", "providers", "models", "receipts", "governance", "playground"]) {
    await page.click(`nav a[href="#/${name}"]`);
    await sleep(1200);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `${name} is wider than a phone (${overflow}px too wide)`);
    await shoot(page, `${name}-phone`);
  }

  await checkRequests(page, openapi);
  await context.close();
});

test("a gateway whose node goes away shows 'ledger unreachable' and recovers", { timeout: 180_000 }, async () => {
  // A second gateway reaches the devnet's node through a proxy this test can cut.
  const rpcPort = Number(new URL(devnet.rpcUrl).port);
  const sockets = new Set();
  let cut = false;
  const proxy = net.createServer((client) => {
    if (cut) return client.destroy();
    const upstream = net.connect(rpcPort, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {});
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const data = fs.mkdtempSync(path.join(os.tmpdir(), "agora-gateway-"));
  const gateway = start("gateway", ["gateway", "--listen", `127.0.0.1:${port}`,
    "--rpc", `http://127.0.0.1:${proxy.address().port}`, "--data-dir", data]);
  try {
    await until("the second gateway", 60_000, async () => (await getJSON(`${url}/agora/network`)).ledger.status === "ok");
    const context = await browser.newContext({ viewport: LAPTOP });
    const page = await openPage(context, [url]);
    await page.goto(`${url}/#/network`);
    await page.waitForFunction(() => Number(document.querySelector("#net-height").textContent.replace(/,/g, "")) > 0);
    assert.ok(await page.isHidden("#ledger-banner"));

    cut = true;
    for (const s of sockets) s.destroy();
    await page.waitForSelector("#ledger-banner:not([hidden])", { timeout: 15_000 });
    assert.match(await page.textContent("#ledger-banner"), /Ledger unreachable/);
    assert.match(await page.textContent("#head-chip"), /stale|…|—/);
    await shoot(page, "ledger-unreachable");

    cut = false;
    await page.waitForSelector("#ledger-banner", { state: "hidden", timeout: 15_000 });
    const height = async () => Number((await page.textContent("#net-height")).replace(/,/g, ""));
    const back = await height();
    await until("a rising height after recovery", 15_000, async () => (await height()) > back);
    await shoot(page, "ledger-recovered");
    await checkRequests(page, { paths: (await getJSON(`${url}/openapi.json`)).paths });
    await context.close();
  } finally {
    assert.equal(await stop(gateway), 0, "the second gateway did not stop cleanly");
    proxy.close();
    fs.rmSync(data, { recursive: true, force: true });
  }
});
