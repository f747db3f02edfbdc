// Agora dashboard: a hash-routed page that reads the gateway's explorer JSON (/agora/...) and
// chats through the gateway's /v1/chat/completions. No libraries, no build step, and no
// request anywhere but this origin.
"use strict";

const UNITS_PER_AGR = 1000000000n;
const POLL_MS = 1000;
const PAGE_REFRESH_TICKS = 3;

// ---- small helpers -------------------------------------------------------------------------

/** Creates an element; `attrs` are properties or attributes, children are nodes or text. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const $ = (id) => document.getElementById(id);

function setText(id, text) {
  const el = $(id);
  if (el && el.textContent !== String(text)) el.textContent = String(text);
}

/** Replaces the children of `el` with `nodes`; table cells get their column's name, which
 * narrow screens show beside each value. */
function fill(el, nodes) {
  el.replaceChildren(...nodes);
  const table = el.closest("table");
  if (!table) return;
  const names = [...table.querySelectorAll("thead th")].map((th) => th.textContent);
  for (const row of el.rows) {
    [...row.cells].forEach((cell, i) => {
      if (names[i] && cell.colSpan === 1) cell.dataset.label = names[i];
    });
  }
}

/** Formats base units (a decimal string) as AGR. */
function agr(units) {
  if (units === null || units === undefined || units === "") return "—";
  let value;
  try {
    value = BigInt(units);
  } catch {
    return String(units);
  }
  const whole = value / UNITS_PER_AGR;
  const frac = (value % UNITS_PER_AGR).toString().padStart(9, "0").replace(/0+$/, "");
  return `${whole.toLocaleString("en")}${frac ? "." + frac : ""} AGR`;
}

/** Formats base units as AGR, rounded to two decimals from 1,000 AGR up (for cards). */
function agrRounded(units) {
  const exact = agr(units);
  const m = exact.match(/^([\d,]+)\.(\d+) AGR$/);
  if (!m || m[1].length < 5) return exact;
  return `${m[1]}.${m[2].slice(0, 2).padEnd(2, "0")} AGR`;
}

/** Formats a price in base units per million tokens as AGR per million tokens. */
function price(units) {
  return units === null || units === undefined ? "—" : agr(units).replace(" AGR", "");
}

function short(text, keep = 10) {
  if (!text) return "—";
  const s = String(text);
  return s.length > keep * 2 + 1 ? `${s.slice(0, keep)}…${s.slice(-6)}` : s;
}

function ago(ms) {
  if (!ms) return "—";
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return new Date(ms).toLocaleString();
}

function time(ms) {
  return ms ? new Date(ms).toLocaleTimeString() : "—";
}

function num(n) {
  return n === null || n === undefined ? "—" : Number(n).toLocaleString("en");
}

function emptyRow(columns, text) {
  return h("tr", {}, h("td", { colspan: columns, class: "empty" }, text));
}

function badge(text, kind) {
  return h("span", { class: `badge ${kind}` }, text);
}

function qualityCell(quality) {
  return quality ? `${(quality.score_ppm / 10000).toFixed(1)}%` : "not scored yet";
}

function checksCell(checks) {
  if (!checks) return "—";
  const disputes = checks.disputes_open + checks.disputes_fraud + checks.disputes_dismissed;
  const parts = [`${num(checks.transcripts_sent)} sent to verifiers`];
  if (disputes) parts.push(`${checks.disputes_fraud} fraud, ${checks.disputes_dismissed} dismissed, ${checks.disputes_open} open`);
  else parts.push("no dispute");
  return parts.join("; ");
}

function providerLink(account) {
  return h("a", { href: `#/providers/${account}`, title: account, class: "mono" }, short(account));
}

function receiptLink(id) {
  return h("a", { href: `#/receipts/${id}`, title: id, class: "mono" }, short(id, 8));
}

// ---- talking to the gateway ----------------------------------------------------------------

const state = {
  ledgerDown: null,
  lastNet: null,
  gatewayDown: false,
  models: {}, // cid -> name
  tick: 0,
  route: { page: "network", arg: null },
  inFlight: new Set(),
};

/** GETs JSON from the gateway; never throws. */
async function getJSON(path) {
  try {
    const res = await fetch(path, { headers: { accept: "application/json" }, cache: "no-store" });
    const body = await res.json().catch(() => null);
    setGateway(true);
    if (body && body.error && body.error.code === "ledger_unreachable") {
      setLedger(false, body.error.message);
    }
    return { ok: res.ok, status: res.status, body };
  } catch (err) {
    setGateway(false);
    return { ok: false, status: 0, body: null };
  }
}

function setGateway(up) {
  state.gatewayDown = !up;
  renderBanner();
}

function setLedger(up, message) {
  state.ledgerDown = up ? null : message || "no answer";
  renderBanner();
}

function renderBanner() {
  const banner = $("ledger-banner");
  let text = "";
  if (state.gatewayDown) {
    text = "Gateway unreachable: retrying every second.";
  } else if (state.ledgerDown) {
    text = `Ledger unreachable (${state.ledgerDown}). Showing the last known data; retrying every second.`;
  }
  banner.hidden = !text;
  if (banner.textContent !== text) banner.textContent = text;
}

/** Runs `job` unless a job with the same key is still running. */
async function once(key, job) {
  if (state.inFlight.has(key)) return;
  state.inFlight.add(key);
  try {
    await job();
  } finally {
    state.inFlight.delete(key);
  }
}

// ---- network -------------------------------------------------------------------------------

async function pollNetwork() {
  const res = await getJSON("/agora/network");
  if (!res.ok || !res.body) return;
  const net = res.body;
  setLedger(net.ledger.status === "ok", net.ledger.error);
  if (net.ledger.status === "ok") {
    state.lastNet = net;
  } else if (state.lastNet) {
    // Keep showing what the ledger last said.
    const last = state.lastNet;
    net.validators = net.validators || last.validators;
    net.supply = net.supply || last.supply;
    if (net.chain && !net.chain.chain_id) net.chain.chain_id = last.chain && last.chain.chain_id;
  }
  const chain = net.chain;
  setText("head-height", chain ? num(chain.height) + (chain.stale ? " (stale)" : "") : "—");
  if (state.route.page === "network") renderNetwork(net);
}

function renderNetwork(net) {
  const chain = net.chain || {};
  setText("net-height", chain.height === undefined ? "—" : num(chain.height));
  setText("net-chain-id", chain.chain_id || "—");
  setText("net-block-time", net.block_time_ms ? `${(net.block_time_ms / 1000).toFixed(2)} s` : "—");
  setText("net-last-block", ago(chain.timestamp_ms));
  setText("net-validators", net.validators ? num(net.validators.length) : "—");
  setText("net-supply", net.supply ? agrRounded(net.supply.total) : "—");
  setText("net-staked", net.supply ? agrRounded(net.supply.bonded) : "—");
  $("net-supply").title = net.supply ? agr(net.supply.total) : "";
  setText("net-tokens", num(net.gateway.served.tokens));
  setText("net-rpm", num(net.gateway.requests_per_minute));
  fill(
    $("net-blocks"),
    net.blocks.length
      ? net.blocks.map((b) =>
          h("tr", {}, h("td", {}, num(b.height)), h("td", { class: "mono" }, short(b.hash, 8)),
            h("td", {}, time(b.timestamp_ms)), h("td", {}, b.txs)))
      : [emptyRow(4, "No blocks seen yet.")],
  );
  if (net.validators) {
    fill($("net-validator-list"), net.validators.map((v) =>
      h("li", {}, h("span", { class: "mono", title: v.account }, short(v.account, 14)), ` — bonded ${agr(v.bonded)}`)));
  }
  drawChart(net.series);
}

/** Draws tokens per second as bars and the mean price as a line, in a hand-made SVG. */
function drawChart(series) {
  const box = $("net-chart");
  const W = Math.max(280, Math.round(box.clientWidth || 600)), H = 150, PAD = 4;
  const n = series.buckets.length;
  const seconds = series.bucket_ms / 1000;
  const tps = series.buckets.map((b) => b.tokens / seconds);
  const prices = series.buckets.map((b) =>
    b.tokens > 0 ? (Number(b.charge) * 1e6) / b.tokens / 1e9 : null);
  const maxTps = Math.max(1, ...tps);
  const known = prices.filter((p) => p !== null);
  const maxPrice = Math.max(1e-9, ...known);
  const step = (W - 2 * PAD) / n;
  let bars = "";
  tps.forEach((v, i) => {
    const bh = (v / maxTps) * (H - 30);
    if (bh > 0) {
      bars += `<rect class="bar" x="${(PAD + i * step + 1).toFixed(1)}" y="${(H - 14 - bh).toFixed(1)}" width="${Math.max(1, step - 2).toFixed(1)}" height="${bh.toFixed(1)}"></rect>`;
    }
  });
  let line = "";
  prices.forEach((p, i) => {
    if (p === null) return;
    const x = PAD + i * step + step / 2;
    const y = H - 14 - (p / maxPrice) * (H - 30);
    line += `${line ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)} `;
  });
  const dots = prices.map((p, i) => p === null ? "" :
    `<circle class="dot" cx="${(PAD + i * step + step / 2).toFixed(1)}" cy="${(H - 14 - (p / maxPrice) * (H - 30)).toFixed(1)}" r="2.5"></circle>`).join("");
  box.innerHTML =
    `<svg viewBox="0 0 ${W} ${H}" width="100%" height="${H}" aria-hidden="true" focusable="false">` +
    `<line class="axis" x1="${PAD}" y1="${H - 14}" x2="${W - PAD}" y2="${H - 14}"></line>` +
    bars + (line ? `<path class="line" d="${line}"></path>` : "") + dots +
    `<text class="tick" x="${PAD}" y="11">${maxTps.toFixed(1)} tok/s</text>` +
    `<text class="tick end" x="${W - PAD}" y="11">${known.length ? maxPrice.toPrecision(3) + " AGR/1M" : ""}</text>` +
    `<text class="tick" x="${PAD}" y="${H - 2}">−5 min</text>` +
    `<text class="tick end" x="${W - PAD}" y="${H - 2}">now</text></svg>`;
  const total = series.buckets.reduce((s, b) => s + b.tokens, 0);
  box.setAttribute("aria-label", total
    ? `${total} tokens in the last five minutes, peak ${maxTps.toFixed(1)} tokens per second`
    : "No traffic in the last five minutes");
}

// ---- providers -----------------------------------------------------------------------------

function healthCell(p) {
  if (p.healthy === undefined) return "—";
  return p.healthy ? badge("healthy", "ok") : badge("cooling down", "bad");
}

function modelNames(p) {
  return p.models.map((m) => m.name || short(m.cid, 8)).join(", ") || "—";
}

async function loadProviders() {
  const res = await getJSON("/agora/providers");
  if (!res.ok || !res.body) return;
  const list = res.body.providers;
  fill($("providers-body"), list.length ? list.map((p) =>
    h("tr", { "data-account": p.account },
      h("th", { scope: "row" }, providerLink(p.account)),
      h("td", { class: "mono" }, p.endpoint),
      h("td", {}, modelNames(p)),
      h("td", { class: "num" }, `${price(p.price_in)} / ${price(p.price_out)}`),
      h("td", { class: "num" }, p.stake === null ? "—" : agr(p.stake)),
      h("td", { class: "num" }, qualityCell(p.quality)),
      h("td", {}, healthCell(p)),
      h("td", {}, p.cooldown_ms ? `${(p.cooldown_ms / 1000).toFixed(1)} s` : "none"),
      h("td", { class: "num" }, num(p.served.tokens)),
      h("td", {}, checksCell(p.checks)),
      h("td", {}, p.jailed === null ? "—" : p.jailed ? badge("jailed", "bad") : "no"),
    )) : [emptyRow(11, "No providers are registered.")]);
}

async function loadProvider(account) {
  const res = await getJSON(`/agora/providers/${encodeURIComponent(account)}`);
  if (!res.body) return;
  if (!res.ok) {
    fill($("provider-fields"), [h("dt", {}, "Error"), h("dd", {}, res.body.error ? res.body.error.message : res.status)]);
    return;
  }
  const p = res.body;
  setText("h-provider", `Provider ${short(p.account)}`);
  const rows = [
    ["Account", h("span", { class: "mono wrap" }, p.account)],
    ["Endpoint", h("span", { class: "mono wrap" }, p.endpoint)],
    ["Status on the ledger", p.status],
    ["Jailed", p.jailed === null ? "—" : p.jailed ? "yes" : "no"],
    ["Stake", p.stake === null ? "—" : agr(p.stake)],
    ["Region / hardware", `${p.region || "—"} / ${p.hardware || "—"}`],
    ["Models", p.models.map((m) => `${m.name || m.cid} at ${price(m.price_in)} / ${price(m.price_out)} AGR per 1M tokens`).join("; ")],
    ["Health", healthCell(p)],
    ["Cooldown", p.cooldown_ms ? `${(p.cooldown_ms / 1000).toFixed(1)} s (after ${p.consecutive_failures} failures)` : "none"],
    ["Requests (ok / failed)", `${num(p.successes)} / ${num(p.failures)}`],
    ["Time to first token", p.ttft_ms ? `${p.ttft_ms.toFixed(0)} ms` : "—"],
    ["Decode speed", p.tokens_per_s ? `${p.tokens_per_s.toFixed(1)} tokens/s` : "—"],
    ["Served here", `${num(p.served.requests)} requests, ${num(p.served.tokens)} tokens, ${agr(p.served.charge)}`],
    ["Quality score", p.quality ? `${qualityCell(p.quality)} (epoch ${num(p.quality.epoch)}, ${num(p.quality.tokens)} tokens, reward ${agr(p.quality.reward)})` : qualityCell(null)],
    ["Checks", checksCell(p.checks)],
  ];
  fill($("provider-fields"), rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  fill($("provider-receipts"), p.receipts.length ? p.receipts.map((r) =>
    h("tr", {}, h("td", {}, receiptLink(r.id)), h("td", {}, time(r.timestamp_ms)),
      h("td", { class: "num" }, `${r.prompt_tokens} + ${r.completion_tokens}`),
      h("td", { class: "num" }, agr(r.charge)))) : [emptyRow(4, "No requests served through this gateway yet.")]);
  fill($("provider-transitions"), p.transitions.length ? p.transitions.map((t) =>
    h("li", {}, `${new Date(t.at_ms).toLocaleString()}: `, t.healthy ? badge("recovered", "ok") : badge("cooldown", "bad")))
    : [h("li", { class: "empty" }, "No health changes seen since the gateway started.")]);
}

// ---- models --------------------------------------------------------------------------------

async function loadModels() {
  const res = await getJSON("/agora/models");
  if (!res.ok || !res.body) return;
  const list = res.body.models;
  fill($("models-body"), list.length ? list.map((m) =>
    h("tr", {},
      h("th", { scope: "row" }, m.name),
      h("td", { class: "mono", title: m.cid }, short(m.cid, 12)),
      h("td", {}, m.status === "active" ? badge("active", "ok") : badge(m.status, "warn")),
      h("td", {}, m.providers.length ? m.providers.map((p, i) => [i ? ", " : "", providerLink(p.account)]) : "none"),
      h("td", { class: "num" }, m.lowest_price ? `${price(m.lowest_price.price_in)} / ${price(m.lowest_price.price_out)}` : "—"),
      h("td", { class: "num" }, `${num(m.demand.requests)} req, ${num(m.demand.tokens)} tok`),
      h("td", { title: "No per-model quality figures yet" }, "n.a."),
    )) : [emptyRow(7, "Governance has no models.")]);
}

// ---- receipts ------------------------------------------------------------------------------

async function ensureModelNames() {
  if (Object.keys(state.models).length) return;
  const res = await getJSON("/v1/models");
  if (res.ok && res.body) for (const m of res.body.data) state.models[m.cid] = m.id;
}

async function loadReceipts() {
  await ensureModelNames();
  const res = await getJSON("/agora/receipts?limit=50");
  if (!res.ok || !res.body) return;
  const list = res.body.receipts;
  fill($("receipts-body"), list.length ? list.map((r) =>
    h("tr", {},
      h("th", { scope: "row" }, receiptLink(r.id)),
      h("td", {}, time(r.timestamp_ms)),
      h("td", {}, providerLink(r.provider)),
      h("td", {}, state.models[r.model] || short(r.model, 8)),
      h("td", { class: "num" }, `${r.prompt_tokens} + ${r.completion_tokens}`),
      h("td", { class: "num" }, agr(r.charge)))) : [emptyRow(6, "No receipts yet: send a request from the playground.")]);
}

async function loadVerification() {
  const res = await getJSON("/agora/verification");
  if (!res.ok || !res.body) return;
  const v = res.body;
  setText("verify-summary", `${num(v.transcripts_sent)} transcripts sent to verifiers by this gateway ` +
    `(base rate ${Math.round(v.verify_rate * 1000) / 10}%, higher for new and disputed providers); ` +
    `${num(v.transcripts_refused)} not taken.`);
  const outcome = { open: "warn", fraud: "bad", dismissed: "ok" };
  fill($("disputes-body"), v.disputes.length ? v.disputes.map((d) =>
    h("tr", { "data-dispute": d.id },
      h("th", { scope: "row" }, receiptLink(d.id)),
      h("td", {}, providerLink(d.provider)),
      h("td", {}, h("span", { class: "mono", title: d.challenger }, short(d.challenger))),
      h("td", { class: "num" }, `${d.votes_fraud} / ${d.votes_no_fraud} of ${d.committee}`),
      h("td", {}, `height ${num(d.deadline_height)}`),
      h("td", {}, badge(d.status, outcome[d.status] || "warn")),
      h("td", { class: "num" }, d.slashed === null ? "—" : agr(d.slashed)),
      h("td", { class: "num" }, d.refunded === null ? "—" : agr(d.refunded)),
    )) : [emptyRow(8, "No disputes: no verifier has challenged an answer.")]);
  const status = { active: "ok", inactive: "warn", jailed: "bad" };
  fill($("verifiers-body"), v.verifiers.length ? v.verifiers.map((x) =>
    h("tr", {},
      h("th", { scope: "row" }, h("span", { class: "mono", title: x.account }, short(x.account))),
      h("td", { class: "mono wrap" }, x.endpoint),
      h("td", { class: "num" }, agr(x.stake)),
      h("td", {}, badge(x.status, status[x.status] || "warn")),
    )) : [emptyRow(4, "No verifier is registered: run `agora verifier` to check answers.")]);
}

function check(label, ok, detail) {
  const kinds = { ok: ["✓", "ok"], pending: ["…", "warn"], bad: ["✗", "bad"] };
  const [mark, kind] = kinds[ok];
  return h("li", { class: `check ${kind}` }, h("span", { class: "mark", "aria-hidden": "true" }, mark),
    h("strong", {}, `${label}: `), detail);
}

async function loadReceipt(id) {
  const res = await getJSON(`/agora/receipts/${encodeURIComponent(id)}`);
  if (!res.body) return;
  if (!res.ok) {
    fill($("receipt-checks"), [h("li", {}, res.body.error ? res.body.error.message : String(res.status))]);
    return;
  }
  const doc = res.body;
  const r = doc.receipt;
  const c = doc.checks;
  setText("h-receipt", `Receipt ${short(r.id, 8)}`);
  const inc = c.inclusion;
  const chain = c.onchain;
  fill($("receipt-checks"), [
    check("Signature", c.signature.ok ? "ok" : "bad",
      c.signature.ok ? "signed by the provider, fields match the signed bytes" : c.signature.error),
    check("Transcript", c.transcript.ok ? "ok" : "bad",
      c.transcript.ok ? "request and answer hash to the receipt" : c.transcript.error),
    check("Inclusion proof", inc.status === "ok" ? "ok" : inc.status === "pending" ? "pending" : "bad",
      inc.status === "ok" ? `in epoch ${inc.epoch}, root ${short(inc.root, 8)}`
        : inc.status === "pending" ? "waiting for the provider to commit this epoch" : inc.error || inc.status),
    check("On-chain root", chain.status === "ok" ? "ok" : ["pending", "not_committed", "unchecked"].includes(chain.status) ? "pending" : "bad",
      chain.status === "ok" ? `committed at height ${chain.height}, matches the proof`
        : chain.status === "mismatch" ? `the ledger holds ${short(chain.root, 8)}, not the proof's root`
          : chain.status === "ledger_unreachable" ? "ledger unreachable" : chain.status.replace("_", " ")),
  ]);
  const fields = [
    ["Id", r.id], ["Provider", providerLink(r.provider)], ["Endpoint", doc.endpoint],
    ["Model", `${state.models[r.model] || ""} ${r.model}`], ["Chain", r.chain_id],
    ["Prompt tokens", r.prompt_tokens], ["Completion tokens", r.completion_tokens],
    ["Price (AGR / 1M tokens)", `${price(r.price_in)} / ${price(r.price_out)}`],
    ["Charge", agr(r.charge)], ["Payer", r.payer], ["Voucher amount", agr(r.voucher_amount)],
    ["Sampling", `temperature ${r.temperature_milli / 1000}, top-p ${r.top_p_milli / 1000}, top-k ${r.top_k}, seed ${r.seed}`],
    ["Time", new Date(r.timestamp_ms).toLocaleString()],
    ["Request hash", r.request_hash], ["Response hash", r.response_hash], ["Signature", r.signature],
  ];
  if (inc.status === "ok") fields.push(["Epoch root", inc.root]);
  if (chain.height) fields.push(["Committed at height", chain.height]);
  fill($("receipt-fields"), fields.flatMap(([k, v]) =>
    [h("dt", {}, k), h("dd", { class: typeof v === "string" && v.length > 40 ? "mono wrap" : "" }, v)]));
  setText("receipt-output", doc.transcript.output_text);
}

// ---- governance ----------------------------------------------------------------------------

async function loadProposals() {
  const res = await getJSON("/agora/proposals");
  if (!res.ok || !res.body) return;
  setText("gov-height", num(res.body.height));
  const list = res.body.proposals;
  const statusKind = { passed: "ok", executed: "ok", rejected: "bad", failed: "bad", voting: "warn" };
  fill($("gov-body"), list.length ? list.map((p) =>
    h("tr", { "data-proposal": p.id },
      h("th", { scope: "row" }, `#${p.id}`),
      h("td", { class: "wrap" }, p.kind),
      h("td", {}, badge(p.status, statusKind[p.status] || "warn")),
      h("td", { class: "num" }, agr(p.yes)),
      h("td", { class: "num" }, agr(p.no)),
      h("td", { class: "num" }, agr(p.abstain)),
      h("td", {}, p.blocks_left > 0 ? `height ${num(p.voting_end_height)} (${num(p.blocks_left)} blocks left)` : `height ${num(p.voting_end_height)} (ended)`),
      h("td", { class: "num" }, agr(p.deposit)),
      h("td", {}, h("span", { class: "mono", title: p.proposer }, short(p.proposer))),
    )) : [emptyRow(9, "No proposals yet. Submit one with `agora gov propose`.")]);
}

// ---- playground ----------------------------------------------------------------------------

async function loadPlayground() {
  const select = $("play-model");
  if (select.options.length) return;
  const res = await getJSON("/v1/models");
  if (!res.ok || !res.body) return;
  for (const m of res.body.data) {
    state.models[m.cid] = m.id;
    select.append(h("option", { value: m.id }, `${m.id} (${m.providers} providers)`));
  }
}

async function send(event) {
  event.preventDefault();
  const key = $("play-key").value.trim();
  try {
    localStorage.setItem("agora-api-key", key);
  } catch {
    // Storage may be disabled; the key is then simply not remembered.
  }
  const provider = {};
  const sort = $("play-sort").value;
  if (sort) provider.sort = sort;
  const maxPrompt = $("play-max-prompt").value;
  const maxCompletion = $("play-max-completion").value;
  if (maxPrompt || maxCompletion) {
    provider.max_price = {};
    if (maxPrompt) provider.max_price.prompt = Number(maxPrompt);
    if (maxCompletion) provider.max_price.completion = Number(maxCompletion);
  }
  const body = {
    model: $("play-model").value,
    messages: [{ role: "user", content: $("play-prompt").value }],
    max_tokens: Number($("play-max-tokens").value) || 64,
    stream: true,
    stream_options: { include_usage: true },
    provider,
  };
  const out = $("play-output");
  const button = $("play-send");
  out.textContent = "";
  out.setAttribute("aria-busy", "true");
  fill($("play-result"), []);
  button.disabled = true;
  setText("play-status", "Waiting for a provider…");
  const started = performance.now();
  let firstToken = null;
  try {
    const res = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify(body),
    });
    if (!res.ok) {
      const err = await res.json().catch(() => null);
      setText("play-status", `Error ${res.status}: ${err && err.error ? err.error.message : res.statusText}`);
      return;
    }
    const servedBy = res.headers.get("x-agora-provider");
    setText("play-status", "Streaming…");
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let usage = null;
    let agora = null;
    let failure = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = frame.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("");
        if (!data || data === "[DONE]") continue;
        let chunk;
        try {
          chunk = JSON.parse(data);
        } catch {
          continue;
        }
        if (chunk.error) failure = chunk.error.message;
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && delta.content) {
          if (firstToken === null) firstToken = performance.now() - started;
          out.textContent += delta.content;
        }
        if (chunk.usage) usage = chunk.usage;
        if (chunk.agora && chunk.agora.receipt) agora = chunk.agora;
      }
    }
    const seconds = (performance.now() - started) / 1000;
    setText("play-status", failure ? `Stream broken: ${failure}` : `Done in ${seconds.toFixed(2)} s.`);
    showResult(servedBy, usage, agora, firstToken);
  } catch (err) {
    setText("play-status", `Request failed: ${err.message}`);
  } finally {
    button.disabled = false;
    out.setAttribute("aria-busy", "false");
  }
}

function showResult(servedBy, usage, agora, firstToken) {
  const receipt = agora && agora.receipt;
  const account = (agora && agora.provider) || servedBy;
  const rows = [
    ["Provider", account ? providerLink(account) : "—"],
    ["Failovers", agora && agora.failovers && agora.failovers.length ? agora.failovers.join(", ") : "none"],
    ["Tokens", usage ? `${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion` : "—"],
    ["Time to first token", firstToken === null ? "—" : `${firstToken.toFixed(0)} ms`],
    ["Cost", receipt ? agr(receipt.charge) : "—"],
    ["Receipt", receipt ? h("a", { href: `#/receipts/${receipt.id}`, id: "play-receipt", class: "mono wrap" }, receipt.id) : "none"],
  ];
  if (receipt) {
    rows.push(["Receipt prices", `${price(receipt.price_in)} / ${price(receipt.price_out)} AGR per 1M tokens`]);
    rows.push(["Receipt signature", h("span", { class: "mono wrap" }, receipt.signature)]);
  }
  fill($("play-result"), rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

// ---- routing -------------------------------------------------------------------------------

const loaders = {
  network: null, // filled by the network poll
  providers: () => loadProviders(),
  provider: (arg) => loadProvider(arg),
  models: () => loadModels(),
  receipts: () => Promise.all([loadReceipts(), loadVerification()]),
  receipt: (arg) => loadReceipt(arg),
  governance: () => loadProposals(),
  playground: () => loadPlayground(),
};

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const [first, arg] = parts;
  if (first === "providers" && arg) return { page: "provider", arg, nav: "providers" };
  if (first === "receipts" && arg) return { page: "receipt", arg, nav: "receipts" };
  if (first in loaders) return { page: first, arg: null, nav: first };
  return { page: "network", arg: null, nav: "network" };
}

function refreshPage() {
  const { page, arg } = state.route;
  const load = loaders[page];
  if (load) once(`page:${page}:${arg}`, () => load(arg));
  else once("network", pollNetwork);
}

function route() {
  state.route = parseRoute();
  for (const section of document.querySelectorAll("[data-page]")) {
    section.hidden = section.dataset.page !== state.route.page;
  }
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === state.route.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const titles = { provider: "Provider", receipt: "Receipt" };
  const name = titles[state.route.page] || state.route.nav[0].toUpperCase() + state.route.nav.slice(1);
  document.title = `${name} · Agora gateway`;
  state.tick = 0;
  refreshPage();
}

function tick() {
  state.tick += 1;
  once("network", pollNetwork);
  // The playground loads once; other pages refresh every few seconds.
  if (state.route.page !== "network" && state.route.page !== "playground" && state.tick % PAGE_REFRESH_TICKS === 0) {
    refreshPage();
  }
}

function start() {
  try {
    const key = localStorage.getItem("agora-api-key");
    if (key) $("play-key").value = key;
  } catch {
    // No storage: the key field starts empty.
  }
  $("play-form").addEventListener("submit", send);
  window.addEventListener("hashchange", route);
  if (!location.hash) history.replaceState(null, "", "#/network");
  route();
  setInterval(tick, POLL_MS);
}

document.addEventListener("DOMContentLoaded", start);
