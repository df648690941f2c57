// Exact decimal arithmetic on the API's strings ("50000.01000000"): BigInt at 8 decimals, no floats.

export const SCALE = 8;
const ONE = 10n ** BigInt(SCALE);
const DECIMAL = /^\d+(\.\d+)?$/;

/** A decimal string as BigInt atoms (1e-8); null if it is not a plain non-negative decimal of <= 8 places. */
export function toAtoms(text) {
  const s = String(text).trim();
  if (!DECIMAL.test(s)) return null;
  const [whole, frac = ""] = s.split(".");
  if (frac.replace(/0+$/, "").length > SCALE) return null;
  return BigInt(whole) * ONE + BigInt((frac + "0".repeat(SCALE)).slice(0, SCALE));
}

export function fromAtoms(atoms, places = SCALE) {
  const neg = atoms < 0n;
  const a = neg ? -atoms : atoms;
  const whole = a / ONE;
  const frac = (a % ONE).toString().padStart(SCALE, "0").slice(0, places);
  return (neg ? "-" : "") + whole.toString() + (places > 0 ? "." + frac : "");
}

/** Number of decimal places a step like "0.01000000" allows (2). */
export function placesOf(step) {
  const s = String(step);
  const frac = s.includes(".") ? s.split(".")[1].replace(/0+$/, "") : "";
  return frac.length;
}

/** Round a decimal string down to a multiple of step; returns a string with the step's places. */
export function floorTo(text, step) {
  const a = toAtoms(text);
  const st = toAtoms(step);
  if (a === null || !st) return text;
  return fromAtoms(a - (a % st), placesOf(step));
}

/** price * qty in atoms (both in atoms). */
export const mulAtoms = (a, b) => (a * b) / ONE;

/** A display string: fixed to the market's places, with thousands separators in the integer part. */
export function fmt(text, places) {
  const a = toAtoms(text);
  if (a === null) return String(text);
  const [whole, frac] = fromAtoms(a, places).split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return frac === undefined ? grouped : `${grouped}.${frac}`;
}

export const isZero = (text) => toAtoms(text) === 0n;
