// REST client for the public Binance-compatible API: public GETs and SIGNED requests.
// The secret only ever feeds WebCrypto's HMAC-SHA256; it is never sent anywhere.

const RECV_WINDOW = 10000;
const enc = new TextEncoder();

export class ApiError extends Error {
  constructor(status, code, msg) {
    super(msg);
    this.status = status;
    this.code = code;
  }
}

let clockOffset = 0; // server time - local time, so timestamps fit the recvWindow on a skewed clock

export async function syncClock() {
  const t0 = Date.now();
  const { serverTime } = await publicGet("/api/v3/time");
  clockOffset = serverTime - Math.round((t0 + Date.now()) / 2);
}

export const now = () => Date.now() + clockOffset;

async function parse(resp) {
  let body = null;
  try {
    body = await resp.json();
  } catch {
    /* not JSON */
  }
  if (!resp.ok) {
    const msg = body && body.msg ? body.msg : `HTTP ${resp.status}`;
    throw new ApiError(resp.status, body && body.code, msg);
  }
  return body;
}

export async function publicGet(path, params = {}) {
  const query = new URLSearchParams(params).toString();
  return parse(await fetch(query ? `${path}?${query}` : path));
}

export function canSign() {
  return Boolean(globalThis.crypto && crypto.subtle);
}

export async function hmacHex(secret, payload) {
  if (!canSign()) throw new ApiError(0, 0, "Signing needs a secure context (HTTPS or localhost).");
  const key = await crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode(payload)));
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A SIGNED request as Binance does it: HMAC over the exact query (GET, DELETE) or form body (POST). */
export async function signed(creds, method, path, params = {}) {
  const clean = Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ""));
  const payload = new URLSearchParams({ ...clean, recvWindow: RECV_WINDOW, timestamp: now() }).toString();
  const signature = await hmacHex(creds.secret, payload);
  const data = `${payload}&signature=${signature}`;
  const headers = { "X-MBX-APIKEY": creds.apiKey };
  let resp;
  if (method === "POST" || method === "PUT") {
    headers["Content-Type"] = "application/x-www-form-urlencoded";
    resp = await fetch(path, { method, headers, body: data });
  } else {
    resp = await fetch(`${path}?${data}`, { method, headers });
  }
  return parse(resp);
}

/** WS-API signing: params sorted by key, joined as k=v&k=v without percent-encoding. */
export async function wsApiSignature(creds) {
  const params = { apiKey: creds.apiKey, recvWindow: RECV_WINDOW, timestamp: now() };
  const payload = Object.keys(params).sort().map((k) => `${k}=${params[k]}`).join("&");
  return { ...params, signature: await hmacHex(creds.secret, payload) };
}
