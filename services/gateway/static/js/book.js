// A local order book kept from a REST snapshot plus depth diffs, Binance's way:
// buffer diffs, load GET /api/v3/depth, drop diffs with u <= lastUpdateId, then require each diff
// to start where the last ended (U = previous u + 1); a gap means resync from a new snapshot.

import { isZero, toAtoms } from "./decimal.js";

export class LocalBook {
  constructor(fetchSnapshot, onChange) {
    this.fetchSnapshot = fetchSnapshot; // () => Promise<{lastUpdateId, bids, asks}>
    this.onChange = onChange;
    this.reset();
    this.generation = 0;
  }

  reset() {
    this.bids = new Map();
    this.asks = new Map();
    this.lastUpdateId = null;
    this.buffer = [];
    this.synced = false;
    this.loading = false;
  }

  /** Start (again) from a new snapshot; diffs arriving meanwhile are buffered. */
  async resync() {
    const gen = ++this.generation;
    this.reset();
    this.loading = true;
    this.onChange(this);
    let snap;
    try {
      snap = await this.fetchSnapshot();
    } catch {
      if (gen === this.generation) { // retry unless superseded
        this.loading = false;
        setTimeout(() => gen === this.generation && this.resync(), 2000);
      }
      return;
    }
    if (gen !== this.generation) return; // a newer resync (or market switch) superseded this one
    for (const [p, q] of snap.bids) this.bids.set(p, q);
    for (const [p, q] of snap.asks) this.asks.set(p, q);
    this.lastUpdateId = snap.lastUpdateId;
    this.loading = false;
    this.synced = true;
    const pending = this.buffer;
    this.buffer = [];
    for (const e of pending) if (!this.apply(e)) return;
    this.onChange(this);
  }

  /** A depthUpdate event; returns false if it revealed a gap (a resync is then under way). */
  apply(e) {
    if (!this.synced) {
      this.buffer.push(e);
      return true;
    }
    if (e.u <= this.lastUpdateId) return true; // already in the snapshot
    if (e.U > this.lastUpdateId + 1) {
      this.resync();
      return false;
    }
    for (const [p, q] of e.b) isZero(q) ? this.bids.delete(p) : this.bids.set(p, q);
    for (const [p, q] of e.a) isZero(q) ? this.asks.delete(p) : this.asks.set(p, q);
    this.lastUpdateId = e.u;
    this.onChange(this);
    return true;
  }

  /** Best `n` levels of a side as [price, qty] strings, best first. */
  levels(side, n) {
    const m = side === "bids" ? this.bids : this.asks;
    const rows = Array.from(m.entries(), ([p, q]) => [p, q, toAtoms(p)]);
    rows.sort((a, b) => (side === "bids" ? (a[2] < b[2] ? 1 : -1) : a[2] < b[2] ? -1 : 1));
    return rows.slice(0, n).map(([p, q]) => [p, q]);
  }

  best(side) {
    const [top] = this.levels(side, 1);
    return top ? top[0] : null;
  }
}
