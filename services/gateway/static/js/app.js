// The trading page: everything here goes through the public API (REST /api/v3, /ws, /ws-api/v3).

import { ApiError, canSign, publicGet, signed, syncClock, wsApiSignature } from "./api.js";
import { LocalBook } from "./book.js";
import { Chart } from "./chart.js";
import { fmt, fromAtoms, mulAtoms, toAtoms, floorTo } from "./decimal.js";
import { checkOrder, marketOf } from "./market.js";
import { ReconnectingSocket, wsUrl } from "./socket.js";

const BOOK_LEVELS = 14;
const TRADES_KEPT = 40;
const TICKER_EVERY_MS = 10000;
const OPEN = new Set(["NEW", "PARTIALLY_FILLED"]);
const CREDS_KEY = "spot.creds";

const $ = (id) => document.getElementById(id);

/** Build an element; children are nodes or text (always text, never HTML). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k === "style") e.style.cssText = v; // CSSOM: the page's policy refuses style attributes
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

const pad = (n) => String(n).padStart(2, "0");
const clock = (ms) => {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
};
const stamp = (ms) => {
  const d = new Date(ms);
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(ms)}`;
};

const state = {
  markets: new Map(),
  m: null, // the selected market (marketOf)
  creds: null,
  trades: [],
  openOrders: new Map(), // orderId -> order (any symbol)
  history: new Map(), // orderId -> order (selected symbol)
  fills: new Map(), // tradeId -> fill (selected symbol)
  balances: new Map(), // asset -> {free, locked}
  side: "BUY",
  type: "LIMIT",
  tab: "open",
  lastPrice: null,
};

let marketSocket = null;
let userSocket = null;
let chart = null;
const book = new LocalBook(() => publicGet("/api/v3/depth", { symbol: state.m.symbol, limit: 1000 }), () => scheduleBook());

/* ---------- small UI helpers ---------- */

function toast(text, kind = "info") {
  const t = el("div", { class: `toast ${kind}` }, text);
  $("toasts").append(t);
  setTimeout(() => t.classList.add("gone"), 4500);
  setTimeout(() => t.remove(), 5000);
}

function setMsg(node, text, kind) {
  node.textContent = text || "";
  node.className = `msg ${kind || ""}`;
}

let bookFrame = 0;
function scheduleBook() {
  if (!bookFrame) bookFrame = requestAnimationFrame(() => ((bookFrame = 0), renderBook()));
}

/* ---------- markets and ticker ---------- */

async function loadMarkets() {
  const info = await publicGet("/api/v3/exchangeInfo");
  const select = $("market");
  select.replaceChildren();
  for (const s of info.symbols) {
    const m = marketOf(s);
    state.markets.set(m.symbol, m);
    select.append(el("option", { value: m.symbol }, `${m.base}/${m.quote}`));
  }
}

function selectMarket(symbol) {
  const prev = state.m;
  const m = state.markets.get(symbol) || state.markets.values().next().value;
  if (!m) return;
  state.m = m;
  $("market").value = m.symbol;
  if (location.hash.slice(1) !== m.symbol) history.replaceState(null, "", `#${m.symbol}`);
  document.title = `${m.base}/${m.quote} · spot`;
  $("chart-title").textContent = `${m.base}/${m.quote}`;
  $("book-price-h").textContent = `Price (${m.quote})`;
  $("book-qty-h").textContent = `Amount (${m.base})`;
  $("trades-price-h").textContent = `Price (${m.quote})`;
  $("trades-qty-h").textContent = `Amount (${m.base})`;
  $("price-unit").textContent = m.quote;
  $("qty-unit").textContent = m.base;
  $("t-vol-label").textContent = `24h volume (${m.base})`;
  $("t-qvol-label").textContent = `24h volume (${m.quote})`;
  $("price").placeholder = `tick ${fmt(m.tickSize, m.pricePlaces)}`;
  $("qty").placeholder = `min ${fmt(m.minQty, m.qtyPlaces)}`;
  state.trades = [];
  state.history.clear();
  state.fills.clear();
  state.lastPrice = null;
  renderTrades();
  renderEntry();
  chart.setMarket(m);
  if (marketSocket && marketSocket.isOpen) {
    if (prev && prev.symbol !== m.symbol) marketSocket.send({ method: "UNSUBSCRIBE", params: streamsOf(prev), id: nextId() });
    subscribeMarket();
  } else {
    book.generation++; // drop any snapshot still loading for the previous market
    book.reset();
    loadTicker();
  }
  if (state.creds) refreshAccountData();
}

async function loadTicker() {
  const m = state.m;
  try {
    const t = await publicGet("/api/v3/ticker/24hr", { symbol: m.symbol });
    if (state.m !== m) return;
    showTicker(t);
  } catch {
    /* the next refresh will tell */
  }
}

/** The 24h figures of `t` (the REST ticker's field names) in the header. */
function showTicker(t) {
  const m = state.m;
  const change = Number(t.priceChangePercent);
  const changeNode = $("t-change");
  changeNode.textContent = `${fmt(t.priceChange.replace("-", ""), m.pricePlaces)} (${change > 0 ? "+" : ""}${change.toFixed(2)}%)`;
  if (t.priceChange.startsWith("-") && toAtoms(t.priceChange.slice(1)) !== 0n) changeNode.textContent = "-" + changeNode.textContent;
  changeNode.className = `value ${change > 0 ? "up" : change < 0 ? "down" : ""}`;
  $("t-high").textContent = fmt(t.highPrice, m.pricePlaces);
  $("t-low").textContent = fmt(t.lowPrice, m.pricePlaces);
  $("t-vol").textContent = fmt(t.volume, m.qtyPlaces);
  $("t-qvol").textContent = fmt(t.quoteVolume, 2);
  if (!state.lastPrice && toAtoms(t.lastPrice)) setLast(t.lastPrice, null);
}

function setLast(price, isBuyerMaker) {
  const m = state.m;
  state.lastPrice = price;
  const node = $("t-last");
  node.textContent = fmt(price, m.pricePlaces);
  if (isBuyerMaker !== null) node.className = `value last ${isBuyerMaker ? "down" : "up"}`;
  $("mid").textContent = fmt(price, m.pricePlaces);
  $("mid").className = node.className.replace("value last", "mid");
}

/* ---------- market streams: depth, trades, klines ---------- */

let reqId = 0;
const nextId = () => ++reqId;
const pendingSubscribe = new Map(); // request id -> symbol whose book resyncs on the ack

const streamsOf = (m) => [
  `${m.symbol.toLowerCase()}@depth@100ms`,
  `${m.symbol.toLowerCase()}@trade`,
  `${m.symbol.toLowerCase()}@kline_${chart.interval}`,
  `${m.symbol.toLowerCase()}@ticker`,
];

/** Another candle interval: the chart reloads and the kline stream follows. */
function selectInterval(interval) {
  const m = state.m;
  const before = chart.interval;
  if (interval === before) return;
  chart.setInterval(interval);
  if (m && marketSocket && marketSocket.isOpen) {
    marketSocket.send({ method: "UNSUBSCRIBE", params: [`${m.symbol.toLowerCase()}@kline_${before}`], id: nextId() });
    marketSocket.send({ method: "SUBSCRIBE", params: [`${m.symbol.toLowerCase()}@kline_${interval}`], id: nextId() });
  }
  if (m) chart.load();
}

function subscribeMarket() {
  const m = state.m;
  book.generation++;
  book.reset();
  scheduleBook();
  const id = nextId();
  pendingSubscribe.set(id, m.symbol);
  marketSocket.send({ method: "SUBSCRIBE", params: streamsOf(m), id });
  loadTrades(); // REST fills whatever the streams missed while down
  chart.load();
  loadTicker();
}

function onMarketMessage(msg) {
  if (msg.id !== undefined && (msg.result !== undefined || msg.error)) {
    const symbol = pendingSubscribe.get(msg.id);
    pendingSubscribe.delete(msg.id);
    if (msg.error) toast(`Stream refused: ${msg.error.msg}`, "error");
    else if (symbol && state.m && symbol === state.m.symbol) book.resync(); // diffs are buffered from now on
    return;
  }
  if (!state.m || msg.s !== state.m.symbol) return;
  if (msg.e === "depthUpdate") book.apply(msg);
  else if (msg.e === "trade") addTrades([{ id: msg.t, price: msg.p, qty: msg.q, time: msg.T, isBuyerMaker: msg.m }]);
  else if (msg.e === "kline") chart.update(msg.k);
  else if (msg.e === "24hrTicker") {
    showTicker({ priceChange: msg.p, priceChangePercent: msg.P, highPrice: msg.h, lowPrice: msg.l, volume: msg.v, quoteVolume: msg.q, lastPrice: msg.c });
  }
}

function setConn(status) {
  const node = $("conn");
  const label = { connecting: "Connecting", open: "Live", reconnecting: "Reconnecting", closed: "Offline" }[status];
  node.dataset.state = status;
  node.lastElementChild.textContent = label || status;
}

async function loadTrades() {
  const m = state.m;
  try {
    const rows = await publicGet("/api/v3/trades", { symbol: m.symbol, limit: TRADES_KEPT });
    if (state.m === m) addTrades(rows);
  } catch {
    /* stream will fill in */
  }
}

function addTrades(rows) {
  const seen = new Set(state.trades.map((t) => t.id));
  let newest = state.trades[0];
  for (const t of rows) {
    if (seen.has(t.id)) continue;
    state.trades.push(t);
    if (!newest || t.id > newest.id) newest = t;
  }
  state.trades.sort((a, b) => b.id - a.id);
  state.trades.length = Math.min(state.trades.length, TRADES_KEPT);
  if (newest) setLast(newest.price, newest.isBuyerMaker);
  renderTrades();
}

function renderTrades() {
  const m = state.m;
  const body = $("trades").tBodies[0];
  body.replaceChildren(
    ...state.trades.map((t) =>
      el("tr", { dataset: { tradeId: t.id } },
        el("td", { class: t.isBuyerMaker ? "down" : "up" }, fmt(t.price, m.pricePlaces)),
        el("td", { class: "num" }, fmt(t.qty, m.qtyPlaces)),
        el("td", { class: "num muted" }, clock(t.time)))));
  if (!state.trades.length) body.append(el("tr", {}, el("td", { colspan: 3, class: "muted center" }, "No trades yet")));
}

function renderBook() {
  const m = state.m;
  if (!m) return;
  $("book-state").textContent = book.synced ? "" : "syncing…";
  $("book-state").dataset.synced = book.synced ? "1" : "0";
  const mine = new Set([...state.openOrders.values()].filter((o) => o.symbol === m.symbol).map((o) => `${o.side}:${o.price}`));
  const asks = book.levels("asks", BOOK_LEVELS);
  const bids = book.levels("bids", BOOK_LEVELS);
  const cum = (rows) => {
    let total = 0n;
    return rows.map(([p, q]) => ((total += toAtoms(q)), [p, q, total]));
  };
  const a = cum(asks);
  const b = cum(bids);
  const max = [...a, ...b].reduce((x, r) => (r[2] > x ? r[2] : x), 1n);
  const row = (side, [p, q, total]) => {
    const width = Number((total * 1000n) / max) / 10;
    const own = mine.has(`${side === "asks" ? "SELL" : "BUY"}:${p}`);
    return el("div", {
      class: `level${own ? " mine" : ""}`, dataset: { price: p }, style: `--depth:${width}%`,
      title: own ? "You have an order at this price" : "Click to use this price",
      onclick: () => {
        $("price").value = fmt(p, m.pricePlaces).replace(/,/g, "");
        renderEntry();
      },
    }, el("span", { class: "p" }, fmt(p, m.pricePlaces)), el("span", { class: "q" }, fmt(q, m.qtyPlaces)),
    el("span", { class: "t" }, fmt(fromAtoms(total), m.qtyPlaces)));
  };
  $("asks").replaceChildren(...a.map((r) => row("asks", r)).reverse());
  $("bids").replaceChildren(...b.map((r) => row("bids", r)));
  if (!asks.length) $("asks").append(el("div", { class: "level empty" }, book.synced ? "No asks" : ""));
  if (!bids.length) $("bids").append(el("div", { class: "level empty" }, book.synced ? "No bids" : ""));
  const bestAsk = asks.length ? toAtoms(asks[0][0]) : null;
  const bestBid = bids.length ? toAtoms(bids[0][0]) : null;
  const spread = $("spread-val");
  if (bestAsk !== null && bestBid !== null) {
    const s = bestAsk - bestBid;
    const pct = Number((s * 1000000n) / bestAsk) / 10000;
    spread.textContent = `Spread ${fmt(fromAtoms(s), m.pricePlaces)} (${pct.toFixed(3)}%)`;
  } else {
    spread.textContent = "Spread —";
  }
  if (!state.lastPrice) $("mid").textContent = "—";
}

/* ---------- signing in, the user stream and account data ---------- */

async function signIn(creds, { quiet = false } = {}) {
  const account = await signed(creds, "GET", "/api/v3/account");
  state.creds = creds;
  sessionStorage.setItem(CREDS_KEY, JSON.stringify(creds));
  $("who").textContent = `Account ${account.uid} · ${creds.apiKey.slice(0, 6)}…`;
  $("who").hidden = false;
  $("signin-btn").hidden = true;
  $("signout-btn").hidden = false;
  document.body.classList.add("signed-in");
  applyAccount(account);
  startUserStream();
  await refreshAccountData();
  renderEntry();
  if (!quiet) toast("Signed in", "ok");
}

function signOut() {
  sessionStorage.removeItem(CREDS_KEY);
  state.creds = null;
  if (userSocket) userSocket.close();
  userSocket = null;
  state.openOrders.clear();
  state.history.clear();
  state.fills.clear();
  state.balances.clear();
  $("who").hidden = true;
  $("signin-btn").hidden = false;
  $("signout-btn").hidden = true;
  $("user-state").textContent = "";
  document.body.classList.remove("signed-in");
  renderOrders();
  renderBalances();
  renderEntry();
  scheduleBook();
}

function startUserStream() {
  if (userSocket) userSocket.close();
  let subscribeId = null;
  userSocket = new ReconnectingSocket(wsUrl("/ws-api/v3"), {
    onStatus: (s) => {
      $("user-state").textContent = s === "open" || s === "closed" ? "" : `${s}…`;
      $("user-state").dataset.live = "0"; // until the subscription is acknowledged
    },
    onOpen: async (sock) => {
      try {
        const params = await wsApiSignature(state.creds);
        subscribeId = `sub-${nextId()}`;
        sock.send({ id: subscribeId, method: "userDataStream.subscribe.signature", params });
      } catch (err) {
        toast(err.message, "error");
      }
    },
    onMessage: (msg) => {
      if (msg.id !== undefined && msg.id === subscribeId) {
        if (msg.status === 200) {
          $("user-state").textContent = "live";
          $("user-state").dataset.live = "1";
          refreshAccountData(true); // anything missed while the stream was down
        } else {
          toast(`User stream refused: ${msg.error ? msg.error.msg : msg.status}`, "error");
        }
        return;
      }
      if (msg.event) onUserEvent(msg.event);
    },
  });
}

function onUserEvent(e) {
  if (e.e === "outboundAccountPosition") {
    balanceEvents += 1;
    for (const b of e.B) state.balances.set(b.a, { free: b.f, locked: b.l });
    renderBalances();
    renderEntry();
  } else if (e.e === "executionReport") {
    orderEvents += 1;
    const order = {
      symbol: e.s, orderId: e.i, clientOrderId: e.c, side: e.S, type: e.o, timeInForce: e.f, price: e.p,
      origQty: e.q, executedQty: e.z, cummulativeQuoteQty: e.Z, status: e.X, time: e.O, updateTime: e.E,
    };
    if (OPEN.has(order.status)) state.openOrders.set(order.orderId, order);
    else state.openOrders.delete(order.orderId);
    if (state.m && e.s === state.m.symbol) state.history.set(order.orderId, order);
    if (e.x === "TRADE") {
      if (state.m && e.s === state.m.symbol) {
        state.fills.set(e.t, {
          id: e.t, orderId: e.i, price: e.L, qty: e.l, quoteQty: e.Y, commission: e.n, commissionAsset: e.N,
          time: e.T, isBuyer: e.S === "BUY", isMaker: e.m,
        });
      }
      const m = state.markets.get(e.s);
      const verb = e.X === "FILLED" ? "filled" : "partly filled";
      toast(`${e.S === "BUY" ? "Buy" : "Sell"} #${e.i} ${verb}: ${fmt(e.l, m ? m.qtyPlaces : 8)} ${m ? m.base : ""} at ${fmt(e.L, m ? m.pricePlaces : 8)}`, "ok");
    }
    // the stream carries no outboundAccountPosition for the hold a new order takes: read it once
    if (e.x === "NEW") scheduleBalances();
    renderOrders();
    scheduleBook();
  }
}

let balancesTimer = 0;
let balanceEvents = 0; // outboundAccountPosition events seen, so a slower REST read never overwrites them
function scheduleBalances() {
  clearTimeout(balancesTimer);
  balancesTimer = setTimeout(async () => {
    const creds = state.creds;
    if (!creds) return;
    const before = balanceEvents;
    try {
      const account = await signed(creds, "GET", "/api/v3/account");
      if (state.creds !== creds) return;
      if (balanceEvents !== before) return scheduleBalances(); // the stream was newer meanwhile: read again
      applyAccount(account);
      renderEntry();
    } catch {
      /* the next event or reconnection will tell */
    }
  }, 250);
}

function applyAccount(account) {
  state.balances.clear();
  for (const b of account.balances) state.balances.set(b.asset, { free: b.free, locked: b.locked });
  renderBalances();
}

let orderEvents = 0; // executionReports seen, so a slower REST read never overwrites them
let refreshing = null;
let refreshAgain = null; // a refresh asked for while one runs: run it after (the market may have changed)
async function refreshAccountData(withBalances = false) {
  if (!state.creds || !state.m) return;
  if (refreshing) {
    refreshAgain = { withBalances: withBalances || (refreshAgain && refreshAgain.withBalances) };
    return refreshing;
  }
  const creds = state.creds;
  const m = state.m;
  refreshing = (async () => {
    if (withBalances) scheduleBalances();
    const before = orderEvents;
    try {
      const [open, all, mine] = await Promise.all([
        signed(creds, "GET", "/api/v3/openOrders"),
        signed(creds, "GET", "/api/v3/allOrders", { symbol: m.symbol, limit: 100 }),
        signed(creds, "GET", "/api/v3/myTrades", { symbol: m.symbol, limit: 100 }),
      ]);
      if (state.creds !== creds || state.m !== m) return;
      if (orderEvents !== before) { // the stream was newer meanwhile: read again
        refreshAgain = refreshAgain || { withBalances: false };
        return;
      }
      state.openOrders = new Map(open.map((o) => [o.orderId, o]));
      state.history = new Map(all.map((o) => [o.orderId, o]));
      state.fills = new Map(mine.map((t) => [t.id, t]));
      renderOrders();
      renderEntry();
      scheduleBook();
    } catch (err) {
      toast(`Could not load your orders: ${err.message}`, "error");
    } finally {
      refreshing = null;
      const again = refreshAgain;
      refreshAgain = null;
      if (again) refreshAccountData(again.withBalances);
    }
  })();
  return refreshing;
}

async function cancel(order, button) {
  button.disabled = true;
  button.textContent = "…";
  try {
    const res = await signed(state.creds, "DELETE", "/api/v3/order", { symbol: order.symbol, orderId: order.orderId });
    state.openOrders.delete(order.orderId);
    if (state.m && order.symbol === state.m.symbol) state.history.set(res.orderId, { ...order, ...res });
    toast(`Order #${order.orderId} cancelled`, "ok");
    renderOrders();
    scheduleBook();
  } catch (err) {
    toast(`Cancel refused: ${err.message}`, "error");
    button.disabled = false;
    button.textContent = "Cancel";
  }
}

function sideCell(side) {
  return el("td", { class: side === "BUY" ? "up" : "down" }, side === "BUY" ? "Buy" : "Sell");
}

function renderOrders() {
  const signedIn = Boolean(state.creds);
  $("orders-empty").hidden = signedIn;
  const open = [...state.openOrders.values()].sort((a, b) => b.orderId - a.orderId);
  $("open-count").textContent = open.length;
  $("open-orders").tBodies[0].replaceChildren(...open.map((o) => {
    const m = state.markets.get(o.symbol) || state.m;
    const btn = el("button", { class: "btn tiny", type: "button", dataset: { cancel: o.orderId } }, "Cancel");
    btn.addEventListener("click", () => cancel(o, btn));
    return el("tr", { dataset: { orderId: o.orderId } },
      el("td", { class: "muted" }, stamp(o.time)), el("td", {}, `${m.base}/${m.quote}`), sideCell(o.side),
      el("td", {}, o.type === "LIMIT" ? "Limit" : o.type === "MARKET" ? "Market" : o.type),
      el("td", { class: "num" }, o.type === "MARKET" ? "Market" : fmt(o.price, m.pricePlaces)),
      el("td", { class: "num" }, fmt(o.origQty, m.qtyPlaces)),
      el("td", { class: "num" }, fmt(o.executedQty, m.qtyPlaces)), el("td", {}, o.timeInForce || ""),
      el("td", { class: "num" }, btn));
  }));
  if (signedIn && !open.length) {
    $("open-orders").tBodies[0].append(el("tr", {}, el("td", { colspan: 9, class: "muted center" }, "No open orders")));
  }
  const m = state.m;
  const hist = [...state.history.values()].sort((a, b) => b.orderId - a.orderId);
  $("order-history").tBodies[0].replaceChildren(...hist.map((o) => {
    const exec = toAtoms(o.executedQty) || 0n;
    const avg = exec ? fromAtoms(((toAtoms(o.cummulativeQuoteQty) || 0n) * 10n ** 8n) / exec) : null;
    return el("tr", { dataset: { orderId: o.orderId, status: o.status } },
      el("td", { class: "muted" }, stamp(o.time)), sideCell(o.side),
      el("td", {}, o.type === "LIMIT" ? "Limit" : o.type === "MARKET" ? "Market" : o.type),
      el("td", { class: "num" }, o.type === "MARKET" ? "Market" : fmt(o.price, m.pricePlaces)),
      el("td", { class: "num" }, fmt(o.origQty, m.qtyPlaces)), el("td", { class: "num" }, fmt(o.executedQty, m.qtyPlaces)),
      el("td", { class: "num" }, avg ? fmt(avg, m.pricePlaces) : "—"),
      el("td", { class: `status s-${o.status.toLowerCase()}` }, o.status.replace("_", " ").toLowerCase()));
  }));
  if (signedIn && !hist.length) {
    $("order-history").tBodies[0].append(el("tr", {}, el("td", { colspan: 8, class: "muted center" }, "No orders yet")));
  }
  const fills = [...state.fills.values()].sort((a, b) => b.id - a.id);
  $("fills").tBodies[0].replaceChildren(...fills.map((t) =>
    el("tr", { dataset: { tradeId: t.id, orderId: t.orderId } },
      el("td", { class: "muted" }, stamp(t.time)), sideCell(t.isBuyer ? "BUY" : "SELL"),
      el("td", { class: "num" }, fmt(t.price, m.pricePlaces)), el("td", { class: "num" }, fmt(t.qty, m.qtyPlaces)),
      el("td", { class: "num" }, fmt(t.quoteQty, m.pricePlaces)),
      el("td", { class: "num" }, `${fmt(t.commission, 8)} ${t.commissionAsset || ""}`),
      el("td", { class: "muted" }, t.isMaker ? "Maker" : "Taker"))));
  if (signedIn && !fills.length) {
    $("fills").tBodies[0].append(el("tr", {}, el("td", { colspan: 7, class: "muted center" }, "No fills yet")));
  }
}

function renderBalances() {
  const body = $("balances").tBodies[0];
  const signedIn = Boolean(state.creds);
  $("balances-empty").hidden = signedIn;
  const rows = [...state.balances.entries()].sort(([a], [b]) => a.localeCompare(b));
  const current = state.m ? [state.m.base, state.m.quote] : [];
  body.replaceChildren(...rows.map(([asset, b]) =>
    el("tr", { dataset: { asset }, class: current.includes(asset) ? "current" : "" },
      el("td", {}, asset), el("td", { class: "num" }, fmt(b.free, 8)), el("td", { class: "num muted" }, fmt(b.locked, 8)))));
}

/* ---------- order entry ---------- */

function renderEntry() {
  const m = state.m;
  if (!m) return;
  const buy = state.side === "BUY";
  document.querySelectorAll("[data-side]").forEach((b) => b.classList.toggle("active", b.dataset.side === state.side));
  document.querySelectorAll("[data-type]").forEach((b) => b.classList.toggle("active", b.dataset.type === state.type));
  const limit = state.type === "LIMIT";
  $("price-field").hidden = !limit;
  $("tif-field").hidden = !limit;
  const submit = $("submit");
  submit.className = `btn submit ${buy ? "buy" : "sell"}`;
  submit.textContent = state.creds ? `${buy ? "Buy" : "Sell"} ${m.base}` : "Sign in to trade";
  const asset = buy ? m.quote : m.base;
  const bal = state.balances.get(asset);
  $("avail").textContent = state.creds ? `${fmt(bal ? bal.free : "0", 8)} ${asset}` : "—";
  const price = limit ? toAtoms($("price").value) : toAtoms(refPrice() || "");
  const qty = toAtoms($("qty").value);
  $("total").textContent = price && qty ? `${limit ? "" : "≈ "}${fmt(fromAtoms(mulAtoms(price, qty)), m.pricePlaces)} ${m.quote}` : "—";
}

/** Best opposite price: what a MARKET order is expected to trade at. */
function refPrice() {
  return state.side === "BUY" ? book.best("asks") : book.best("bids");
}

function fillPct(pct) {
  const m = state.m;
  const buy = state.side === "BUY";
  const bal = state.balances.get(buy ? m.quote : m.base);
  if (!bal) return;
  const free = toAtoms(bal.free) || 0n;
  let qty;
  if (buy) {
    const price = toAtoms(state.type === "LIMIT" ? $("price").value : refPrice() || "");
    if (!price) return setMsg($("order-msg"), "Enter a price first.", "error");
    qty = (((free * BigInt(pct)) / 100n) * 10n ** 8n) / price;
  } else {
    qty = (free * BigInt(pct)) / 100n;
  }
  $("qty").value = floorTo(fromAtoms(qty), m.stepSize);
  renderEntry();
}

async function submitOrder(ev) {
  ev.preventDefault();
  const msg = $("order-msg");
  if (!state.creds) return openSignIn();
  const m = state.m;
  const order = { type: state.type, price: $("price").value.trim(), quantity: $("qty").value.trim() };
  const problem = checkOrder(m, order, refPrice());
  if (problem) return setMsg(msg, problem, "error");
  const params = { symbol: m.symbol, side: state.side, type: state.type, quantity: order.quantity, newOrderRespType: "FULL" };
  if (state.type === "LIMIT") Object.assign(params, { price: order.price, timeInForce: $("tif").value });
  const button = $("submit");
  button.disabled = true;
  setMsg(msg, "Sending…", "");
  try {
    const res = await signed(state.creds, "POST", "/api/v3/order", params);
    const what = `${res.side === "BUY" ? "Buy" : "Sell"} order #${res.orderId}`;
    setMsg(msg, res.status ? `${what}: ${res.status.replace("_", " ").toLowerCase()}` : `${what} accepted`, "ok");
    if (res.status && !state.history.has(res.orderId)) { // else the user stream got here first, and is newer
      state.history.set(res.orderId, { time: res.transactTime, ...res });
      if (OPEN.has(res.status)) state.openOrders.set(res.orderId, { time: res.transactTime, ...res });
    }
    for (const f of res.fills || []) {
      state.fills.set(f.tradeId, { id: f.tradeId, orderId: res.orderId, price: f.price, qty: f.qty,
        quoteQty: fromAtoms(mulAtoms(toAtoms(f.price), toAtoms(f.qty))), commission: f.commission,
        commissionAsset: f.commissionAsset, time: res.transactTime, isBuyer: res.side === "BUY", isMaker: false });
    }
    renderOrders();
    scheduleBook();
  } catch (err) {
    setMsg(msg, err instanceof ApiError ? err.message : `Could not send the order: ${err.message}`, "error");
  } finally {
    button.disabled = false;
  }
}

/* ---------- sign-in dialog ---------- */

function openSignIn() {
  setMsg($("signin-msg"), canSign() ? "" : "Signing needs a secure context (HTTPS or localhost).", "error");
  $("signin").showModal();
  $("api-key").focus();
}

async function onSignInSubmit(ev) {
  ev.preventDefault();
  const creds = { apiKey: $("api-key").value.trim(), secret: $("api-secret").value.trim() };
  if (!creds.apiKey || !creds.secret) return setMsg($("signin-msg"), "Enter both the API key and the secret.", "error");
  $("signin-submit").disabled = true;
  try {
    await signIn(creds);
    $("api-secret").value = "";
    $("signin").close();
  } catch (err) {
    setMsg($("signin-msg"), err.message, "error");
  } finally {
    $("signin-submit").disabled = false;
  }
}

/* ---------- start ---------- */

function bindUi() {
  $("market").addEventListener("change", (e) => selectMarket(e.target.value));
  $("interval").addEventListener("change", (e) => selectInterval(e.target.value));
  window.addEventListener("hashchange", () => {
    const s = location.hash.slice(1).toUpperCase();
    if (state.markets.has(s) && (!state.m || s !== state.m.symbol)) selectMarket(s);
  });
  document.querySelectorAll("[data-side]").forEach((b) => b.addEventListener("click", () => {
    state.side = b.dataset.side;
    setMsg($("order-msg"), "");
    renderEntry();
  }));
  document.querySelectorAll("[data-type]").forEach((b) => b.addEventListener("click", () => {
    state.type = b.dataset.type;
    setMsg($("order-msg"), "");
    renderEntry();
  }));
  document.querySelectorAll("[data-pct]").forEach((b) => b.addEventListener("click", () => fillPct(Number(b.dataset.pct))));
  $("price").addEventListener("input", renderEntry);
  $("qty").addEventListener("input", renderEntry);
  $("order-form").addEventListener("submit", submitOrder);
  document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => {
    state.tab = t.dataset.tab;
    document.querySelectorAll(".tab").forEach((x) => {
      x.classList.toggle("active", x === t);
      x.setAttribute("aria-selected", String(x === t));
    });
    for (const name of ["open", "history", "fills"]) $(`tab-${name}`).hidden = name !== state.tab;
  }));
  $("signin-btn").addEventListener("click", openSignIn);
  $("signout-btn").addEventListener("click", signOut);
  $("signin-cancel").addEventListener("click", () => $("signin").close());
  $("signin-form").addEventListener("submit", onSignInSubmit);
}

async function main() {
  bindUi();
  chart = new Chart($("chart"), $("chart-empty"));
  try {
    await loadMarkets();
  } catch (err) {
    toast(`Could not load markets: ${err.message}`, "error");
    setTimeout(main, 3000);
    return;
  }
  syncClock().catch(() => {});
  selectMarket(location.hash.slice(1).toUpperCase());
  marketSocket = new ReconnectingSocket(wsUrl("/ws/0"), {
    onOpen: () => subscribeMarket(),
    onMessage: onMarketMessage,
    onStatus: (s) => {
      setConn(s);
      if (s !== "open") {
        book.generation++; // the book cannot be trusted until it is resynchronised
        book.reset();
        scheduleBook();
      }
    },
  });
  setInterval(loadTicker, TICKER_EVERY_MS);
  renderOrders();
  renderBalances();
  const saved = sessionStorage.getItem(CREDS_KEY);
  if (saved) {
    try {
      await signIn(JSON.parse(saved), { quiet: true });
    } catch (err) {
      sessionStorage.removeItem(CREDS_KEY);
      toast(`Signed out: ${err.message}`, "error");
    }
  }
}

main();
