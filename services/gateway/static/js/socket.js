// A WebSocket that comes back: exponential backoff with jitter (0.5 s doubling to 15 s), reset once a
// connection has stayed up. `onOpen` runs on every (re)connection so callers can subscribe and resync.

const MIN_DELAY = 500;
const MAX_DELAY = 15000;

export class ReconnectingSocket {
  constructor(url, { onOpen, onMessage, onStatus }) {
    this.url = url;
    this.onOpen = onOpen;
    this.onMessage = onMessage;
    this.onStatus = onStatus || (() => {});
    this.delay = MIN_DELAY;
    this.closed = false;
    this.ws = null;
    this.timer = null;
    this.connects = 0;
    this.connect();
  }

  connect() {
    if (this.closed) return;
    this.onStatus("connecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    let stable = null;
    ws.onopen = () => {
      this.connects += 1;
      this.onStatus("open");
      stable = setTimeout(() => (this.delay = MIN_DELAY), 5000);
      this.onOpen(this);
    };
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      this.onMessage(msg, this);
    };
    ws.onclose = () => {
      clearTimeout(stable);
      if (this.ws !== ws || this.closed) return;
      this.ws = null;
      this.onStatus("reconnecting");
      const wait = this.delay * (0.75 + Math.random() * 0.5);
      this.delay = Math.min(this.delay * 2, MAX_DELAY);
      this.timer = setTimeout(() => this.connect(), wait);
    };
    ws.onerror = () => ws.close();
  }

  get isOpen() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN);
  }

  send(obj) {
    if (this.isOpen) this.ws.send(JSON.stringify(obj));
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close();
    this.ws = null;
    this.onStatus("closed");
  }
}

export function wsUrl(path) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}${path}`;
}
