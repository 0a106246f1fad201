// A structural diff of two JSON values for the audit timeline: the paths
// that were added, removed or changed, with their old and new values.

// flatten maps each leaf (and each empty object or array) to its path.
function flatten(v, path, out) {
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v);
    if (keys.length === 0) out.set(path || '(value)', JSON.stringify(v));
    for (const k of keys) {
      const p = Array.isArray(v) ? `${path}[${k}]` : path ? `${path}.${k}` : k;
      flatten(v[k], p, out);
    }
  } else {
    out.set(path || '(value)', JSON.stringify(v));
  }
  return out;
}

// diff returns [{op: 'add'|'del'|'chg', path, before, after}] in path order.
// A missing side (null: the resource did not exist) adds or removes all.
export function diff(before, after) {
  const a = before === null || before === undefined ? new Map() : flatten(before, '', new Map());
  const b = after === null || after === undefined ? new Map() : flatten(after, '', new Map());
  const paths = [...new Set([...a.keys(), ...b.keys()])].sort();
  const out = [];
  for (const p of paths) {
    if (!a.has(p)) out.push({op: 'add', path: p, after: b.get(p)});
    else if (!b.has(p)) out.push({op: 'del', path: p, before: a.get(p)});
    else if (a.get(p) !== b.get(p)) out.push({op: 'chg', path: p, before: a.get(p), after: b.get(p)});
  }
  return out;
}
