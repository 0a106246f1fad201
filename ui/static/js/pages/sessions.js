// Sessions and locks: the sessions (live), one session with the
// configuration keys it holds (GET /config?session=ID), create and
// destroy.
//
//   #/sessions?q=     the list
//   #/sessions/ID     one session and its keys

import {get, keyPath, liveGet, request} from '../api.js';
import {clearFieldErrors, confirmDialog, field, fmtTime, formError, h, keepFocus, num, pager, set, showFieldError, splitList, toast} from '../dom.js';
import {problem} from '../problem.js';

const ROWS = 100;

// sessionBody turns the form into POST /sessions' body: empty fields are
// left out (the API's defaults).
export function sessionBody(f) {
  const body = {};
  for (const k of ['name', 'ttl', 'behavior', 'lock_delay', 'node']) {
    const v = (f[k] || '').trim();
    if (v) body[k] = v;
  }
  return body;
}

// destroy asks, then destroys a session; it resolves to the API's answer
// (null when the user cancelled).
async function destroy(s) {
  if (!(await confirmDialog(`Destroy session ${s.name ? `${s.name} (${s.id})` : s.id}? The keys it holds are ${s.behavior === 'delete' ? 'deleted' : 'released'}.`, 'Destroy'))) return null;
  const res = await request('DELETE', `/sessions/${encodeURIComponent(s.id)}`);
  const done = [['released', res.data.released], ['deleted', res.data.deleted]]
    .filter(([, keys]) => keys && keys.length).map(([what, keys]) => `${what} ${keys.join(', ')}`);
  toast(`Destroyed session ${s.id}${done.length ? `; ${done.join('; ')}` : ''}.`);
  return res.data;
}

const ttlText = (s) => s.ttl || 'none (lives with its node)';

// ---- the list -------------------------------------------------------------

function renderList(main, query, env) {
  const state = {q: query.get('q') || '', page: 0};
  let all = null;
  const text = h('input', {type: 'search', name: 'q', value: state.q, placeholder: 'id, name, node…'});
  const summary = h('p', {class: 'muted', 'aria-live': 'polite'});
  const status = h('div', {});
  const body = h('div', {}, h('p', {class: 'muted'}, 'Loading…'));
  set(main, h('div', {class: 'toolbar'}, h('h1', {}, 'Sessions and locks'), h('span', {class: 'spacer'}),
    h('button', {type: 'button', id: 'session-create', onclick: () => openCreate(env)}, 'Create a session')),
  h('p', {class: 'muted'}, 'A session holds locks on configuration keys and loses them when it ends: TTL without a renew, its node failed or left, or destroyed.'),
  h('form', {class: 'toolbar', role: 'search', onsubmit: (e) => e.preventDefault()}, field('Search', text)),
  summary, status, body);

  function render() {
    if (!all) return;
    const words = splitList(state.q.toLowerCase());
    const rows = all.filter((s) => words.every((w) => `${s.id} ${s.name} ${s.node}`.toLowerCase().includes(w)));
    set(summary, `${num(all.length)} session${all.length === 1 ? '' : 's'}${env.acl.enabled ? ' that your token may read' : ''}; ${num(rows.length)} shown.`);
    const pages = Math.max(1, Math.ceil(rows.length / ROWS));
    state.page = Math.min(state.page, pages - 1);
    const slice = rows.slice(state.page * ROWS, (state.page + 1) * ROWS);
    keepFocus(body, () => set(body,
      rows.length === 0 ? h('p', {}, all.length === 0 ? 'No sessions.' : 'No session matches the search.')
        : h('div', {class: 'table-wrap'}, h('table', {id: 'sessions-table'},
          h('caption', {class: 'sr-only'}, 'Sessions'),
          h('thead', {}, h('tr', {}, ['Session', 'Name', 'Node', 'TTL', 'Behavior', 'Lock delay', 'Created'].map((c, i) =>
            h('th', {scope: 'col', class: i >= 4 ? 'hide-narrow' : null}, c)), h('th', {scope: 'col'}, h('span', {class: 'sr-only'}, 'Actions')))),
          h('tbody', {}, slice.map((s) => h('tr', {'data-session': s.id},
            h('th', {scope: 'row', class: 'mono'}, h('a', {href: `#/sessions/${encodeURIComponent(s.id)}`}, s.id)),
            h('td', {}, s.name || h('span', {class: 'muted'}, '—')),
            h('td', {}, s.node),
            h('td', {}, s.ttl || h('span', {class: 'muted'}, 'none')),
            h('td', {class: 'hide-narrow'}, s.behavior),
            h('td', {class: 'hide-narrow'}, s.lock_delay),
            h('td', {class: 'hide-narrow'}, h('time', {datetime: s.create_time}, fmtTime(s.create_time))),
            h('td', {}, h('button', {type: 'button', class: 'secondary', 'data-key': `destroy:${s.id}`, 'aria-label': `Destroy session ${s.name || s.id}`, onclick: async () => {
              try { await destroy(s); } catch (e) { set(status, problem(e, `session ${s.id}`)); }
            }}, 'Destroy'))))))),
      rows.length > ROWS ? pager(rows.length, state.page, ROWS, (p) => { state.page = p; render(); }) : null));
  }
  text.addEventListener('input', () => {
    state.q = text.value;
    state.page = 0;
    history.replaceState(null, '', `#/sessions${state.q ? `?q=${encodeURIComponent(state.q)}` : ''}`);
    render();
  });

  return liveGet('/sessions', {
    all: true,
    onData: ({data}) => { all = data; set(status); render(); },
    onError: (e) => { all = null; set(summary); set(body, problem(e, 'the sessions')); },
  });
}

// ---- one session ------------------------------------------------------------

function renderSession(main, id, env) {
  const info = h('div', {}, h('p', {class: 'muted'}, 'Loading…'));
  const keys = h('div', {}, h('p', {class: 'muted'}, 'Loading…'));
  const status = h('div', {});
  let sess = null;
  set(main, h('p', {}, h('a', {href: '#/sessions'}, '← Sessions')), h('h1', {}, 'Session ', h('span', {class: 'mono'}, id)), status, info,
    h('h2', {id: 'session-keys-title'}, 'Keys it holds'), keys);

  function renderInfo() {
    const s = sess;
    set(info, h('dl', {class: 'kv', id: 'session-info'},
      h('dt', {}, 'Name'), h('dd', {}, s.name || '—'),
      h('dt', {}, 'Node'), h('dd', {}, s.node),
      h('dt', {}, 'TTL'), h('dd', {}, ttlText(s)),
      h('dt', {}, 'Behavior'), h('dd', {}, s.behavior === 'delete' ? 'delete (its keys are deleted when it ends)' : 'release (its keys are released when it ends)'),
      h('dt', {}, 'Lock delay'), h('dd', {}, s.lock_delay),
      h('dt', {}, 'Created'), h('dd', {}, h('time', {datetime: s.create_time}, fmtTime(s.create_time))),
      h('dt', {}, 'Indexes'), h('dd', {}, `created ${s.create_index}, modified ${s.modify_index}, renewed ${s.renew_index}`)),
    h('div', {class: 'actions'}, h('button', {type: 'button', class: 'danger', id: 'session-destroy', onclick: async () => {
      try {
        if (await destroy(s)) env.go('#/sessions');
      } catch (e) { set(status, problem(e, `session ${id}`)); }
    }}, 'Destroy')));
  }

  const stops = [
    liveGet(`/sessions/${encodeURIComponent(id)}`, {
      onData: ({data}) => { sess = data; set(status); renderInfo(); },
      onError: (e) => {
        sess = null;
        set(info, e.status === 404 ? h('div', {class: 'banner warn', role: 'alert', id: 'session-gone'}, `Session ${id} has ended (or never existed).`)
          : problem(e, `session ${id}`));
      },
    }),
    liveGet('/config', {
      all: true,
      query: {session: id},
      onData: ({data}) => set(keys, data.length === 0 ? h('p', {id: 'session-no-keys'}, 'It holds no keys.')
        : h('div', {class: 'table-wrap'}, h('table', {id: 'session-keys', 'aria-labelledby': 'session-keys-title'},
          h('thead', {}, h('tr', {}, ['Key', 'Lock index', 'Version'].map((c, i) => h('th', {scope: 'col', class: i ? 'num' : null}, c)))),
          h('tbody', {}, data.map((en) => h('tr', {'data-config-key': en.key},
            h('th', {scope: 'row', class: 'mono'}, h('a', {href: `#/config/${keyPath(en.key)}`}, en.key)),
            h('td', {class: 'num'}, num(en.lock_index)),
            h('td', {class: 'num'}, num(en.modify_index)))))))),
      onError: (e) => set(keys, problem(e, 'the keys it holds')),
    }),
  ];
  return () => stops.forEach((s) => s());
}

// ---- create -------------------------------------------------------------------

function openCreate(env) {
  const ctl = (name, attrs = {}) => h('input', {type: 'text', name, id: `ses-${name}`, autocomplete: 'off', ...attrs});
  const behavior = h('select', {name: 'behavior', id: 'ses-behavior'},
    h('option', {value: 'release'}, 'release: its keys are released'), h('option', {value: 'delete'}, 'delete: its keys are deleted'));
  const nodes = h('datalist', {id: 'ses-nodes'});
  const form = h('form', {class: 'form', novalidate: true},
    h('h2', {id: 'session-title'}, 'Create a session'), formError(),
    h('div', {class: 'form-grid'},
      field('Name', ctl('name'), 'letters, digits, spaces and . _ : / @ -'),
      field('Node', ctl('node', {list: 'ses-nodes', placeholder: env.node}), `a live member; default: this node${env.node ? ` (${env.node})` : ''}`),
      field('TTL', ctl('ttl', {placeholder: '15s'}), '10s to 24h; empty: none (it lives with its node)'),
      field('Lock delay', ctl('lock_delay', {placeholder: '15s'}), 'at most 60s; 0s for none'),
      field('When it ends', behavior)),
    nodes,
    h('div', {class: 'actions'}, h('button', {type: 'submit'}, 'Create'), h('button', {type: 'button', class: 'secondary', onclick: () => dlg.close()}, 'Cancel')));
  const dlg = h('dialog', {'aria-labelledby': 'session-title'}, form);
  dlg.addEventListener('close', () => dlg.remove());
  get('/status').then(({data}) => set(nodes, data.members.filter((m) => m.status === 'alive').map((m) => h('option', {value: m.name})))).catch(() => {});
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    try {
      const res = await request('POST', '/sessions', {body: sessionBody(Object.fromEntries(new FormData(form)))});
      dlg.close();
      toast(`Created session ${res.data.id}.`);
      env.go(`#/sessions/${encodeURIComponent(res.data.id)}`);
    } catch (e) {
      showFieldError(form, e);
    }
  });
  document.body.append(dlg);
  dlg.showModal();
  form.querySelector('#ses-name').focus();
}

export default {
  id: 'sessions',
  title: 'Sessions',
  render(main, {params, query, env}) {
    if (params.length) return renderSession(main, params.join('/'), env);
    return renderList(main, query, env);
  },
};
