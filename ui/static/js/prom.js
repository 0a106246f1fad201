// Reads the Prometheus text exposition of /metrics: enough for the
// console's gauges and counters (no histograms are read).

// parse returns a list of samples {name, labels, value}.
export function parse(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[3])) !== null) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    out.push({name: m[1], labels, value: Number(m[4])});
  }
  return out;
}

// value returns the first sample of name whose labels include want, or undefined.
export function value(samples, name, want = {}) {
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(want).every(([k, v]) => s.labels[k] === v)) return s.value;
  }
  return undefined;
}
