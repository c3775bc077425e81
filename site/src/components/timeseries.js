// Charts of reduced series (temporal-reduce's res=<d>.parquet files) over a time window.
//
// A page gives, per instrument, its files by resolution name ({"1h": FileAttachment(...),
// ...}) and its columns ({avg, min, max}). The window picker offers windows ending at the
// newest reading; the window's length picks the resolution (resolutionFor), and only that
// file is loaded. Each chart draws, per instrument, a min-max band and a line of the average,
// with the unit on the y axis. Gaps longer than one bucket are left as gaps.
import * as Inputs from "npm:@observablehq/inputs";
import * as Plot from "npm:@observablehq/plot";

const DAY = 86400;

// The resolution a window of `days` asks for: finer data for shorter windows.
const RESOLUTION_BY_WINDOW = [[30, "1h"], [60, "2h"], [90, "4h"], [180, "12h"], [Infinity, "24h"]];

const WINDOWS = [
  {label: "7 days", days: 7}, {label: "30 days", days: 30}, {label: "60 days", days: 60},
  {label: "90 days", days: 90}, {label: "180 days", days: 180}, {label: "1 year", days: 365},
  {label: "2 years", days: 730}
];

/** Seconds in a duration such as "1h", "30m", "2d" (null when it is not one). */
export function seconds(name) {
  const m = /^(\d+)\s*(s|m|h|d|w)$/.exec(name);
  return m ? Number(m[1]) * {s: 1, m: 60, h: 3600, d: DAY, w: 7 * DAY}[m[2]] : null;
}

/** The resolution for a window of `days`, among `available` names: the rule's choice when
 * present, else the finest one at least as coarse, else the coarsest there is. */
export function resolutionFor(days, available) {
  const wanted = seconds(RESOLUTION_BY_WINDOW.find(([limit]) => days <= limit)[1]);
  const known = available.filter((name) => seconds(name) !== null)
    .sort((a, b) => seconds(a) - seconds(b));
  return known.find((name) => seconds(name) >= wanted) ?? known[known.length - 1];
}

const tables = new Map();

/** The rows of one file as {t: Date, <column>: number | null}, cached per file. */
export function rows(file) {
  if (!tables.has(file)) tables.set(file, file.parquet().then(toRows));
  return tables.get(file);
}

function toRows(table) {
  const [time, ...values] = table.schema.fields;
  // The pond's time columns are epoch seconds (int64); Arrow timestamps arrive as ms.
  const scale = time.type.typeId === 10 /* Arrow Type.Timestamp */ ? 1 : 1000;
  const times = Array.from(table.getChild(time.name), (v) => new Date(Number(v) * scale));
  const columns = values.map((f) => [f.name, Array.from(table.getChild(f.name),
    (v) => (v === null ? null : Number(v)))]);
  return times.map((t, i) => {
    const row = {t};
    for (const [name, column] of columns) row[name] = column[i];
    return row;
  });
}

/** [start of the first bucket, end of the last] over every instrument, from their coarsest
 * files (the smallest: the finer ones are loaded only for a window that needs them). */
export async function extent(instruments) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const {files} of instruments) {
    const [coarsest] = Object.keys(files).sort((a, b) => seconds(b) - seconds(a));
    const data = await rows(files[coarsest]);
    if (data.length) {
      lo = Math.min(lo, data[0].t);
      hi = Math.max(hi, +data[data.length - 1].t + seconds(coarsest) * 1000);
    }
  }
  return lo <= hi ? [new Date(lo), new Date(hi)] : null;
}

/** A picker of windows ending at the newest reading; its value is {label, days, start, end}.
 * `range` is extent()'s answer (null when there are no readings yet). */
export function windowPicker(range) {
  const [start, end] = range ?? [new Date(0), new Date(0)];
  const span = (end - start) / 1000 / DAY;
  const options = WINDOWS.filter((w) => w.days < span)
    .concat([{label: `All (${Math.max(1, Math.ceil(span))} days)`, days: Math.max(span, 1 / 24)}])
    .map((w) => ({...w, start: new Date(Math.max(+start, +end - w.days * DAY * 1000)), end}));
  return Inputs.radio(options, {label: "Window", format: (w) => w.label,
                                value: options[options.length - 1]});
}

/** Every instrument's rows in `period` (a window picker's value), at the resolution its
 * length asks for. */
export async function load(instruments, period) {
  return Promise.all(instruments.map(async (instrument) => {
    const resolution = resolutionFor(period.days, Object.keys(instrument.files));
    const data = await rows(instrument.files[resolution]);
    const inside = data.filter((r) => r.t >= period.start && r.t < period.end);
    return {...instrument, resolution, rows: withGaps(inside, seconds(resolution) * 1000)};
  }));
}

// A row of nulls after each bucket not followed by the next one, so lines break at gaps.
function withGaps(data, width) {
  const out = [];
  for (let i = 0; i < data.length; ++i) {
    out.push(data[i]);
    const next = data[i + 1];
    if (next && next.t - data[i].t > width) out.push({t: new Date(+data[i].t + width)});
  }
  return out;
}

/** A line about what is shown: resolution(s) and number of buckets. */
export function describe(loaded, period) {
  const resolutions = [...new Set(loaded.map((i) => i.resolution))].join(", ");
  const buckets = loaded.reduce((n, i) => n + i.rows.filter((r) => "t" in r).length, 0);
  const fmt = (d) => d.toISOString().slice(0, 16).replace("T", " ");
  return `${fmt(period.start)} – ${fmt(period.end)} UTC · resolution ${resolutions} · ` +
    `${buckets.toLocaleString("en")} buckets`;
}

/** The chart of one parameter: `series` is [{label, rows, columns: {avg, min, max}}]. */
export function chart(series, {label, period, width}) {
  const long = series.flatMap(({label: instrument, rows, columns}) => rows.map((r) => ({
    t: r.t, instrument, avg: r[columns.avg] ?? null, min: r[columns.min] ?? null,
    max: r[columns.max] ?? null
  })));
  const several = series.length > 1;
  return Plot.plot({
    width,
    height: 320,
    marginLeft: 60,
    x: {type: "utc", label: null, domain: [period.start, period.end]},
    y: {label, grid: true, nice: true},
    color: {legend: several, domain: series.map((s) => s.label)},
    marks: [
      Plot.areaY(long, {x: "t", y1: "min", y2: "max", z: "instrument",
                        fill: several ? "instrument" : "steelblue", fillOpacity: 0.2}),
      Plot.lineY(long, {x: "t", y: "avg", z: "instrument",
                        stroke: several ? "instrument" : "steelblue", strokeWidth: 1.5}),
      Plot.tip(long, Plot.pointerX({x: "t", y: "avg", z: "instrument",
                                    channels: {instrument: "instrument", min: "min", max: "max"}}))
    ]
  });
}
