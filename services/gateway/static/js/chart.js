// Candlesticks and volume of any interval from GET /api/v3/klines, kept live by the <symbol>@kline_<interval> stream.
// Lightweight Charts is vendored from npm (static/vendor, Apache-2.0): no CDN.

import { CandlestickSeries, ColorType, HistogramSeries, createChart } from "../vendor/lightweight-charts-5.2.1.js";
import { placesOf } from "./decimal.js";
import { publicGet } from "./api.js";

const UP = "#2ebd85";
const DOWN = "#f6465d";
// the chart draws times as UTC: shift them so the axis reads in the viewer's local time
const TZ_SHIFT_S = -new Date().getTimezoneOffset() * 60;

export class Chart {
  constructor(node, emptyNode) {
    this.emptyNode = emptyNode;
    this.market = null;
    this.interval = "1m";
    this.lastTime = 0;
    this.chart = createChart(node, {
      autoSize: true,
      layout: {
        background: { type: ColorType.Solid, color: "transparent" },
        textColor: "#8b949e",
        fontFamily: getComputedStyle(document.body).fontFamily,
        fontSize: 11,
      },
      grid: { vertLines: { color: "rgba(139,148,158,0.08)" }, horzLines: { color: "rgba(139,148,158,0.08)" } },
      rightPriceScale: { borderColor: "rgba(139,148,158,0.2)" },
      timeScale: { borderColor: "rgba(139,148,158,0.2)", timeVisible: true, secondsVisible: false, rightOffset: 6, barSpacing: 9 },
      crosshair: { mode: 0 },
    });
    this.candles = this.chart.addSeries(CandlestickSeries, {
      upColor: UP, downColor: DOWN, wickUpColor: UP, wickDownColor: DOWN, borderVisible: false,
    });
    this.volume = this.chart.addSeries(HistogramSeries, {
      priceFormat: { type: "volume" }, priceScaleId: "", lastValueVisible: false, priceLineVisible: false,
    });
    this.volume.priceScale().applyOptions({ scaleMargins: { top: 0.82, bottom: 0 } });
  }

  setMarket(m) {
    this.market = m;
    this.lastTime = 0;
    const places = placesOf(m.tickSize);
    this.candles.applyOptions({ priceFormat: { type: "price", precision: places, minMove: Number(m.tickSize) } });
    this.candles.setData([]);
    this.volume.setData([]);
    this.emptyNode.hidden = true;
  }

  /** Show candles of another interval (one of Binance's: 1s .. 1M); load() fetches them. */
  setInterval(interval) {
    this.interval = interval;
    this.lastTime = 0;
    this.chart.applyOptions({ timeScale: { secondsVisible: interval === "1s" } });
    this.candles.setData([]);
    this.volume.setData([]);
  }

  async load() {
    const m = this.market;
    const interval = this.interval;
    let rows;
    try {
      rows = await publicGet("/api/v3/klines", { symbol: m.symbol, interval, limit: 500 });
    } catch {
      return;
    }
    if (m !== this.market || interval !== this.interval) return;
    const bars = rows.map((r) => this.bar(r[0], r[1], r[2], r[3], r[4], r[5]));
    this.candles.setData(bars.map((b) => b.candle));
    this.volume.setData(bars.map((b) => b.vol));
    this.lastTime = bars.length ? bars[bars.length - 1].candle.time : 0;
    this.emptyNode.hidden = bars.length > 0;
    if (bars.length) this.chart.timeScale().scrollToRealTime();
  }

  /** A kline stream event's `k`. */
  update(k) {
    if (k.i !== this.interval) return; // the stream of the interval shown before
    const b = this.bar(k.t, k.o, k.h, k.l, k.c, k.v);
    if (b.candle.time < this.lastTime) return; // older than what we show: a late event
    this.lastTime = b.candle.time;
    this.candles.update(b.candle);
    this.volume.update(b.vol);
    this.emptyNode.hidden = true;
  }

  bar(openTime, o, h, l, c, v) {
    const time = Math.floor(openTime / 1000) + TZ_SHIFT_S;
    const candle = { time, open: Number(o), high: Number(h), low: Number(l), close: Number(c) };
    const vol = { time, value: Number(v), color: Number(c) >= Number(o) ? "rgba(46,189,133,0.35)" : "rgba(246,70,93,0.35)" };
    return { candle, vol };
  }
}
