// A market from exchangeInfo, and the client-side checks of an order against its filters.

import { fmt, fromAtoms, mulAtoms, placesOf, toAtoms } from "./decimal.js";

export function marketOf(info) {
  const f = Object.fromEntries(info.filters.map((x) => [x.filterType, x]));
  const price = f.PRICE_FILTER || {};
  const lot = f.LOT_SIZE || {};
  const notional = f.NOTIONAL || f.MIN_NOTIONAL || {};
  return {
    symbol: info.symbol,
    base: info.baseAsset,
    quote: info.quoteAsset,
    status: info.status,
    tickSize: price.tickSize || "0.00000001",
    minPrice: price.minPrice || "0",
    maxPrice: price.maxPrice || "0",
    stepSize: lot.stepSize || "0.00000001",
    minQty: lot.minQty || "0",
    maxQty: lot.maxQty || "0",
    minNotional: notional.minNotional || "0",
    applyMinToMarket: notional.applyMinToMarket !== false,
    pricePlaces: placesOf(price.tickSize || "0.00000001"),
    qtyPlaces: placesOf(lot.stepSize || "0.00000001"),
  };
}

/**
 * Check an order the way the server's filters will; returns an error message or null.
 * `refPrice` (best opposite price) lets a MARKET order's notional be estimated.
 */
export function checkOrder(m, { type, price, quantity }, refPrice) {
  const q = toAtoms(quantity);
  if (q === null || q === 0n) return "Enter a quantity (a positive number).";
  const step = toAtoms(m.stepSize);
  if (step && q % step !== 0n) return `Quantity must be a multiple of the step size ${fmt(m.stepSize, m.qtyPlaces)} ${m.base}.`;
  if (q < toAtoms(m.minQty)) return `Quantity is below the minimum ${fmt(m.minQty, m.qtyPlaces)} ${m.base}.`;
  const maxQ = toAtoms(m.maxQty);
  if (maxQ && q > maxQ) return `Quantity is above the maximum ${fmt(m.maxQty, m.qtyPlaces)} ${m.base}.`;
  let p = null;
  if (type === "LIMIT") {
    p = toAtoms(price);
    if (p === null || p === 0n) return "Enter a price (a positive number).";
    const tick = toAtoms(m.tickSize);
    if (tick && p % tick !== 0n) return `Price must be a multiple of the tick size ${fmt(m.tickSize, m.pricePlaces)} ${m.quote}.`;
    if (p < toAtoms(m.minPrice)) return `Price is below the minimum ${fmt(m.minPrice, m.pricePlaces)} ${m.quote}.`;
    const maxP = toAtoms(m.maxPrice);
    if (maxP && p > maxP) return `Price is above the maximum ${fmt(m.maxPrice, m.pricePlaces)} ${m.quote}.`;
  } else if (m.applyMinToMarket && refPrice) {
    p = toAtoms(refPrice);
  }
  if (p !== null) {
    const notional = mulAtoms(p, q);
    const min = toAtoms(m.minNotional);
    if (notional < min) {
      return `Order value ${fmt(fromAtoms(notional), m.pricePlaces)} ${m.quote} is below the minimum ${fmt(m.minNotional, m.pricePlaces)} ${m.quote}.`;
    }
  }
  return null;
}
