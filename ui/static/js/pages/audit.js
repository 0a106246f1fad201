// Audit: the timeline of changes, newest first, with filters and a
// before/after diff per record; older pages through the API's cursor
// (X-Nexus-Next). The newest page is live (a blocking query).
//
//   #/audit?resource_type=&resource=&actor=&action=&since=&after=&limit=

import {get, liveGet} from '../api.js';
import {field, fmtTime, h, set} from '../dom.js';
import {diff} from '../diff.js';
import {problem} from '../problem.js';

const PAGE = 50;
const TYPES = ['service', 'instance', 'config', 'route', 'acl', 'cluster'];
const FILTERS = ['resource_type', 'resource', 'actor', 'action', 'since'];

// toRFC3339 reads a datetime-local value (local time) as RFC 3339 UTC.
const toRFC3339 = (v) => (v ? new Date(v).toISOString() : '');
const toLocal = (s) => {
  if (!s) return '';
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
};

function record(r) {
  const changes = diff(r.before, r.after);
  const sym = {add: '+', del: '−', chg: '~'};
  const label = {add: 'added', del: 'removed', chg: 'changed'};
  return h('li', {'data-raft-index': r.raft_index},
    h('div', {class: 'head'},
      h('time', {datetime: r.time}, fmtTime(r.time)),
      h('strong', {}, r.action),
      h('span', {}, `${r.resource_type} `, h('code', {}, r.resource)),
      h('span', {class: 'muted'}, `by ${r.actor || 'unknown'} on ${r.node || '?'}`)),
    h('details', {},
      h('summary', {}, `${changes.length} field${changes.length === 1 ? '' : 's'} changed · index ${r.raft_index}.${r.position}${r.request_id ? ` · request ${r.request_id}` : ''}`),
      changes.length === 0 ? h('p', {class: 'muted'}, 'Before and after are the same.')
        : h('ul', {class: 'diff', 'aria-label': 'Changes'}, changes.map((c) => h('li', {class: c.op},
          h('span', {'aria-hidden': 'true'}, `${sym[c.op]} `), h('span', {class: 'sr-only'}, `${label[c.op]}: `),
          `${c.path}: `, c.op === 'chg' ? `${c.before} → ${c.after}` : c.op === 'add' ? c.after : c.before))),
      h('div', {class: 'form-grid'},
        h('div', {}, h('h3', {}, 'Before'), h('pre', {}, r.before === null ? '(none)' : JSON.stringify(r.before, null, 2))),
        h('div', {}, h('h3', {}, 'After'), h('pre', {}, r.after === null ? '(none)' : JSON.stringify(r.after, null, 2))))));
}

export default {
  id: 'audit',
  title: 'Audit',
  render(main, {query, env}) {
    const f = Object.fromEntries(FILTERS.map((k) => [k, query.get(k) || '']));
    const after = query.get('after') || '';
    const type = h('select', {name: 'resource_type'}, h('option', {value: ''}, 'any'), TYPES.map((t) => h('option', {value: t, selected: t === f.resource_type}, t)));
    const resource = h('input', {type: 'text', name: 'resource', value: f.resource, placeholder: 'web, web/web-1, app/db/pool'});
    const actor = h('input', {type: 'text', name: 'actor', value: f.actor});
    const action = h('input', {type: 'text', name: 'action', value: f.action, list: 'audit-actions'});
    const since = h('input', {type: 'datetime-local', name: 'since', value: toLocal(f.since)});
    const form = h('form', {class: 'toolbar', role: 'search'},
      field('Resource type', type), field('Resource', resource), field('Actor', actor), field('Action', action), field('Since (local time)', since),
      h('datalist', {id: 'audit-actions'}, ['register', 'update', 'deregister', 'status', 'set', 'delete', 'upsert', 'init'].map((a) => h('option', {value: a}))),
      h('button', {type: 'submit'}, 'Apply'), h('a', {class: 'button secondary', href: '#/audit'}, 'Clear'));
    const list = h('div', {'aria-live': 'polite'}, h('p', {class: 'muted'}, 'Loading…'));
    const nav = h('div', {class: 'pager'});
    set(main, h('h1', {}, 'Audit'), form, list, nav);

    const hashFor = (extra) => {
      const q = new URLSearchParams();
      for (const k of FILTERS) if (f[k]) q.set(k, f[k]);
      if (query.get('limit')) q.set('limit', query.get('limit'));
      for (const [k, v] of Object.entries(extra)) if (v) q.set(k, v);
      const s = q.toString();
      return `#/audit${s ? `?${s}` : ''}`;
    };
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      Object.assign(f, {resource_type: type.value, resource: resource.value.trim(), actor: actor.value.trim(), action: action.value.trim(), since: toRFC3339(since.value)});
      env.go(hashFor({}));
    });

    const show = ({data, next}) => {
      set(list, data.length === 0 ? h('p', {}, after ? 'No older records.' : 'No records match.') : h('ol', {class: 'timeline', id: 'audit-timeline'}, data.map(record)));
      set(nav,
        after ? h('a', {class: 'button secondary', href: hashFor({})}, 'Newest') : null,
        next ? h('a', {class: 'button secondary', href: hashFor({after: next}), rel: 'next'}, 'Older') : null,
        h('span', {class: 'muted'}, after ? `Records before ${after}.` : 'Newest records, live.'));
    };
    const q = {...f, limit: Number(query.get('limit')) || PAGE};
    if (after) {
      // An older page does not change: read it once.
      get('/audit', {query: {...q, after}}).then(show).catch((e) => set(list, problem(e, 'the audit log')));
      return null;
    }
    return liveGet('/audit', {query: q, onData: show, onError: (e) => set(list, problem(e, 'the audit log'))});
  },
};
