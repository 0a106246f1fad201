// Services: the catalog with filters, a service's instances, an
// instance's detail; register and deregister.
//
//   #/services?q=&type=&tag=&status=   the list
//   #/services/NAME?q=&status=&tag=     its instances
//   #/services/NAME/ID                  one instance
//
// The list is read whole through the API's pages (a blocking query on
// the first) and only one page of rows (100) is in the DOM, so 10,000
// instances stay responsive; filters run on the data in memory.

import {getAll, liveGet, request} from '../api.js';
import {badge, clearFieldErrors, confirmDialog, field, fmtTime, formError, h, keepFocus, num, pager, set, showFieldError, splitList, tags, toast} from '../dom.js';
import {problem} from '../problem.js';
import * as maint from '../maintenance.js';

const ROWS = 100;
const STATUSES = ['passing', 'warning', 'critical'];
const rank = (s) => (s === 'passing' ? 0 : s === 'warning' ? 1 : 2);

const output = (inst) => (inst.checks || []).map((c) => c.output).filter(Boolean).join('\n');

// summarize adds counts by status and the worst status to a service.
function summarize(svc) {
  const c = {passing: 0, warning: 0, critical: 0};
  let worst = 'passing';
  for (const i of svc.instances) {
    c[STATUSES.includes(i.status) ? i.status : 'critical']++;
    if (rank(i.status) > rank(worst)) worst = i.status;
  }
  return {...svc, counts: c, worst: svc.instances.length ? worst : 'none'};
}

// text matching: every word of q in the joined searchable text.
function matcher(q) {
  const words = splitList(q.toLowerCase());
  return (text) => words.every((w) => text.includes(w));
}

function instanceText(i) {
  return [i.id, i.address, i.port, i.node, output(i), i.maintenance ? `maintenance ${i.maintenance.reason}` : '', ...(i.tags || []),
    ...Object.entries(i.metadata || {}).map(([k, v]) => `${k}=${v}`)].join(' ').toLowerCase();
}

// setQuery keeps the filters in the hash (a link shows the same view)
// without a history entry per key. Only on input: a live render must not
// rewrite a hash the user has just left.
function setQuery(base, values) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(values)) if (v) q.set(k, v);
  const s = q.toString();
  history.replaceState(null, '', `#/${base}${s ? `?${s}` : ''}`);
}

function filterBar(controls) {
  return h('form', {class: 'toolbar', role: 'search', onsubmit: (e) => e.preventDefault()}, controls.map(([label, c]) => field(label, c)));
}

const statusSelect = (name, value) => h('select', {name}, h('option', {value: ''}, 'any'),
  STATUSES.map((s) => h('option', {value: s, selected: s === value}, s)));

// ---- the list ---------------------------------------------------------------

function renderList(main, query, env) {
  const state = {q: query.get('q') || '', type: query.get('type') || '', tag: query.get('tag') || '', status: query.get('status') || '', page: 0};
  let all = null;
  const text = h('input', {type: 'search', name: 'q', value: state.q, placeholder: 'name, address, tag, metadata…'});
  const type = h('select', {name: 'type'}, h('option', {value: ''}, 'any'));
  const tag = h('input', {type: 'text', name: 'tag', value: state.tag, list: 'svc-tags'});
  const status = statusSelect('status', state.status);
  const tagList = h('datalist', {id: 'svc-tags'});
  const summary = h('p', {class: 'muted', 'aria-live': 'polite'});
  const body = h('div', {}, h('p', {class: 'muted'}, 'Loading…'));
  const registerBtn = h('button', {type: 'button', onclick: () => openRegister(env)}, 'Register an instance');
  set(main, h('div', {class: 'toolbar'}, h('h1', {}, 'Services'), h('span', {class: 'spacer'}), registerBtn),
    filterBar([['Search', text], ['Type', type], ['Tag', tag], ['Has an instance', status]]), tagList, summary, body);

  function render() {
    if (!all) return;
    const match = matcher(state.q);
    const rows = all.filter((s) => (!state.type || s.type === state.type)
      && (!state.tag || s.tags.includes(state.tag))
      && (!state.status || s.counts[state.status] > 0)
      && (!state.q || match(s.text)));
    const instances = all.reduce((n, s) => n + s.instances.length, 0);
    const mine = env.acl.enabled ? ' that your token may read' : '';
    set(summary, `${num(all.length)} services, ${num(instances)} instances${mine}; ${num(rows.length)} shown by the filters.`);
    const pages = Math.max(1, Math.ceil(rows.length / ROWS));
    state.page = Math.min(state.page, pages - 1);
    const slice = rows.slice(state.page * ROWS, (state.page + 1) * ROWS);
    const go = (p) => { state.page = p; render(); };
    set(body,
      h('div', {class: 'table-wrap'}, h('table', {id: 'services-table'},
        h('caption', {class: 'sr-only'}, 'Services'),
        h('thead', {}, h('tr', {},
          h('th', {scope: 'col'}, 'Service'), h('th', {scope: 'col'}, 'Type'), h('th', {scope: 'col'}, 'Health'),
          h('th', {scope: 'col', class: 'num'}, 'Instances'), h('th', {scope: 'col', class: 'num'}, 'Passing'),
          h('th', {scope: 'col', class: 'num'}, 'Warning'), h('th', {scope: 'col', class: 'num'}, 'Critical'),
          h('th', {scope: 'col', class: 'hide-narrow'}, 'Tags'))),
        h('tbody', {}, slice.map((s) => h('tr', {'data-service': s.name},
          h('th', {scope: 'row'}, h('a', {href: `#/services/${encodeURIComponent(s.name)}`}, s.name)),
          h('td', {}, s.type), h('td', {}, badge(s.worst)),
          h('td', {class: 'num'}, num(s.instances.length)), h('td', {class: 'num'}, num(s.counts.passing)),
          h('td', {class: 'num'}, num(s.counts.warning)), h('td', {class: 'num'}, num(s.counts.critical)),
          h('td', {class: 'hide-narrow'}, tags(s.tags))))))),
      rows.length === 0 ? h('p', {}, all.length === 0 ? 'No services are registered.' : 'No service matches the filters.') : null,
      rows.length > ROWS ? pager(rows.length, state.page, ROWS, go) : null);
  }

  const onInput = () => {
    Object.assign(state, {q: text.value, type: type.value, tag: tag.value, status: status.value, page: 0});
    setQuery('services', {q: state.q, type: state.type, tag: state.tag, status: state.status});
    render();
  };
  for (const c of [text, tag]) c.addEventListener('input', onInput);
  for (const c of [type, status]) c.addEventListener('change', onInput);

  return liveGet('/services', {
    all: true,
    onData: ({data}) => {
      all = data.map((s) => {
        const sum = summarize(s);
        sum.text = [s.name, s.type, ...s.tags, ...s.instances.map(instanceText)].join(' ').toLowerCase();
        return sum;
      });
      const types = [...new Set(all.map((s) => s.type))].sort();
      set(type, h('option', {value: ''}, 'any'), types.map((t) => h('option', {value: t, selected: t === state.type}, t)));
      set(tagList, [...new Set(all.flatMap((s) => s.tags))].sort().map((t) => h('option', {value: t})));
      render();
    },
    onError: (e) => { all = null; set(summary); set(body, problem(e, 'the services')); },
  });
}

// ---- one service ------------------------------------------------------------

function renderService(main, name, query, env) {
  const state = {q: query.get('q') || '', status: query.get('status') || '', tag: query.get('tag') || '', page: 0};
  let svc = null;
  let records = null; // GET /maintenance, or an error
  const target = {scope: 'service', service: name};
  const maintBox = h('div', {id: 'service-maintenance'});
  const maintButton = h('span', {});
  const text = h('input', {type: 'search', name: 'q', value: state.q, placeholder: 'id, address, node, output…'});
  const status = statusSelect('status', state.status);
  const tag = h('input', {type: 'text', name: 'tag', value: state.tag});
  const head = h('div', {});
  const body = h('div', {}, h('p', {class: 'muted'}, 'Loading…'));
  const deregister = h('button', {type: 'button', class: 'danger', onclick: async () => {
    if (!(await confirmDialog(`Deregister every instance of ${name}?`, 'Deregister'))) return;
    try {
      const res = await request('DELETE', `/services/${encodeURIComponent(name)}`);
      toast(`Deregistered ${res.data.deregistered} instances of ${name}.`);
      env.go('#/services');
    } catch (e) { set(head, problem(e, `service ${name}`)); }
  }}, 'Deregister the service');
  set(main, h('p', {}, h('a', {href: '#/services'}, '← Services')),
    h('div', {class: 'toolbar'}, h('h1', {}, name), h('span', {class: 'spacer'}),
      maintButton, h('button', {type: 'button', class: 'secondary', onclick: () => openRegister(env, svc)}, 'Register an instance'), deregister),
    head, maintBox, filterBar([['Search', text], ['Status', status], ['Tag', tag]]), body);

  function renderMaint() {
    if (records instanceof Error) { set(maintButton); set(maintBox, maint.note(records)); return; }
    if (!records) return;
    const r = maint.findRecord(records, target);
    keepFocus(maintButton, () => set(maintButton, maint.toggle(target, r, {onError: (e) => set(maintBox, problem(e, `maintenance of ${name}`))})));
    set(maintBox, r ? h('div', {class: 'banner warn'}, h('strong', {}, `${name} is in maintenance`),
      ` since ${fmtTime(r.since)}${r.actor ? ` (${r.actor})` : ''}: ${r.reason || 'no reason given'}. Its instances are critical and left out of discovery, the gateway and DNS.`) : null);
  }

  function render() {
    if (!svc) return;
    const s = summarize(svc);
    const inMaint = s.instances.filter((i) => i.maintenance).length;
    set(head, h('p', {}, `Type ${s.type} · `, badge(s.worst), ` · ${num(s.instances.length)} instances: `,
      `${num(s.counts.passing)} passing, ${num(s.counts.warning)} warning, ${num(s.counts.critical)} critical`,
      inMaint ? ` (${num(inMaint)} in maintenance)` : ''));
    const match = matcher(state.q);
    const rows = s.instances.filter((i) => (!state.status || i.status === state.status)
      && (!state.tag || (i.tags || []).includes(state.tag)) && (!state.q || match(instanceText(i))));
    const pages = Math.max(1, Math.ceil(rows.length / ROWS));
    state.page = Math.min(state.page, pages - 1);
    const slice = rows.slice(state.page * ROWS, (state.page + 1) * ROWS);
    set(body,
      h('div', {class: 'table-wrap'}, h('table', {id: 'instances-table'},
        h('caption', {class: 'sr-only'}, `Instances of ${name}`),
        h('thead', {}, h('tr', {}, ['Instance', 'Status', 'Check output', 'Node', 'Address', 'Tags', 'Metadata']
          .map((c, i) => h('th', {scope: 'col', class: i >= 5 ? 'hide-narrow' : null}, c)))),
        h('tbody', {}, slice.map((i) => h('tr', {'data-instance': i.id},
          h('th', {scope: 'row'}, h('a', {href: `#/services/${encodeURIComponent(name)}/${encodeURIComponent(i.id)}`}, i.id)),
          h('td', {class: 'status'}, badge(i.status), i.maintenance ? [' ', maint.badge(i.maintenance)] : null),
          h('td', {class: 'output mono'}, output(i) || h('span', {class: 'muted'}, '—')),
          h('td', {}, i.node),
          h('td', {class: 'mono'}, `${i.address}:${i.port}`),
          h('td', {class: 'hide-narrow'}, tags(i.tags)),
          h('td', {class: 'hide-narrow mono'}, Object.entries(i.metadata || {}).map(([k, v]) => h('div', {}, `${k}=${v}`))))))) ),
      rows.length === 0 ? h('p', {}, 'No instance matches the filters.') : null,
      rows.length > ROWS ? pager(rows.length, state.page, ROWS, (p) => { state.page = p; render(); }) : null);
  }
  const onInput = () => {
    Object.assign(state, {q: text.value, status: status.value, tag: tag.value, page: 0});
    setQuery(`services/${encodeURIComponent(name)}`, {q: state.q, status: state.status, tag: state.tag});
    render();
  };
  text.addEventListener('input', onInput);
  tag.addEventListener('input', onInput);
  status.addEventListener('change', onInput);

  const stops = [liveGet(`/services/${encodeURIComponent(name)}`, {
    onData: ({data}) => { svc = data; render(); },
    onError: (e) => {
      svc = null;
      set(head, e.status === 404 ? h('div', {class: 'banner warn', role: 'alert'}, `Service ${name} is not registered (any more).`) : problem(e, `service ${name}`));
      set(body);
    },
  }), maint.watch({
    onData: ({data}) => { records = data || []; renderMaint(); },
    onError: (e) => { records = e; renderMaint(); },
  })];
  return () => stops.forEach((s) => s());
}

// ---- one instance -----------------------------------------------------------

function renderInstance(main, name, id, env) {
  const body = h('div', {}, h('p', {class: 'muted'}, 'Loading…'));
  const status = h('div', {});
  const svcHref = `#/services/${encodeURIComponent(name)}`;
  const target = {scope: 'instance', service: name, id};
  let inst = null;
  let records = null; // GET /maintenance, or an error
  set(main, h('p', {}, h('a', {href: '#/services'}, 'Services'), ' / ', h('a', {href: svcHref}, name)), h('h1', {}, id), status, body);

  // maintenance is the instance's maintenance state and its toggle.
  function maintenance(i) {
    const m = i.maintenance;
    const from = m && m.scope !== 'instance'
      ? h('p', {}, `It comes from its ${m.scope === 'node' ? `node ${i.node}` : `service ${name}`}: end it `,
        m.scope === 'node' ? h('a', {href: '#/overview'}, 'on the overview') : h('a', {href: svcHref}, 'on the service\'s page'), '.')
      : null;
    const onError = (e) => set(status, problem(e, `maintenance of ${id}`));
    return [h('h2', {}, 'Maintenance'),
      m ? h('dl', {class: 'kv', id: 'instance-maintenance'},
        h('dt', {}, 'State'), h('dd', {}, maint.badge(m)),
        h('dt', {}, 'Scope'), h('dd', {}, m.scope === 'node' ? `node ${i.node}` : m.scope === 'service' ? `service ${name}` : 'this instance'),
        h('dt', {}, 'Since'), h('dd', {}, h('time', {datetime: m.since}, fmtTime(m.since))),
        h('dt', {}, 'Its checks say'), h('dd', {}, badge(m.check_status)))
        : h('p', {id: 'instance-maintenance'}, 'Not in maintenance.'),
      from,
      records instanceof Error ? maint.note(records)
        : records ? h('div', {class: 'actions'}, maint.toggle(target, maint.findRecord(records, target), {onError})) : null];
  }

  function render() {
    if (!inst) return;
    const i = inst;
    const del = h('button', {type: 'button', class: 'danger', onclick: async () => {
      if (!(await confirmDialog(`Deregister instance ${id} of ${name}?`, 'Deregister'))) return;
      try {
        await request('DELETE', `/services/${encodeURIComponent(name)}/instances/${encodeURIComponent(id)}`);
        toast(`Deregistered ${id}.`);
        env.go(svcHref);
      } catch (e) { set(status, problem(e, `instance ${id}`)); }
    }}, 'Deregister');
    keepFocus(body, () => set(body,
      h('dl', {class: 'kv'},
        h('dt', {}, 'Status'), h('dd', {id: 'instance-status'}, badge(i.status), i.maintenance ? [' ', maint.badge(i.maintenance)] : null),
        h('dt', {}, 'Service'), h('dd', {}, `${i.service} (${i.type})`),
        h('dt', {}, 'Address'), h('dd', {class: 'mono'}, `${i.address}:${i.port}`),
        h('dt', {}, 'Owner node'), h('dd', {}, i.node),
        h('dt', {}, 'Tags'), h('dd', {}, tags(i.tags).length ? tags(i.tags) : '—'),
        h('dt', {}, 'Metadata'), h('dd', {class: 'mono'}, Object.keys(i.metadata || {}).length ? Object.entries(i.metadata).map(([k, v]) => h('div', {}, `${k}=${v}`)) : '—'),
        h('dt', {}, 'Depends on'), h('dd', {}, (i.depends_on || []).join(', ') || '—'),
        h('dt', {}, 'Deregister critical after'), h('dd', {}, i.deregister_critical_after || '—'),
        h('dt', {}, 'Indexes'), h('dd', {}, `created ${i.create_index}, modified ${i.modify_index}`)),
      maintenance(i),
      h('h2', {}, 'Checks'),
      (i.checks || []).length === 0 ? h('p', {}, 'No checks: the instance is passing while registered.')
        : h('div', {class: 'table-wrap'}, h('table', {},
          h('thead', {}, h('tr', {}, ['Kind', 'Target', 'Interval / TTL', 'Status', 'Output'].map((c) => h('th', {scope: 'col'}, c)))),
          h('tbody', {}, i.checks.map((c) => h('tr', {},
            h('td', {}, c.kind), h('td', {class: 'mono'}, c.http || c.tcp || '—'),
            h('td', {}, c.ttl || [c.interval, c.timeout && `timeout ${c.timeout}`].filter(Boolean).join(', ') || '—'),
            h('td', {}, badge(c.status)), h('td', {class: 'mono'}, c.output || '—')))))),
      h('h2', {}, 'As the API returns it'),
      h('pre', {}, JSON.stringify(i, null, 2)),
      h('div', {class: 'actions'}, del)));
  }

  const stops = [liveGet(`/services/${encodeURIComponent(name)}`, {
    onData: ({data}) => {
      inst = data.instances.find((x) => x.id === id) || null;
      if (!inst) { set(body, h('div', {class: 'banner warn', role: 'alert'}, `Instance ${id} of ${name} is not registered (any more).`)); return; }
      render();
    },
    onError: (e) => {
      inst = null;
      set(body, e.status === 404 ? h('div', {class: 'banner warn', role: 'alert'}, `Service ${name} is not registered (any more).`) : problem(e, `service ${name}`));
    },
  }), maint.watch({
    onData: ({data}) => { records = data || []; render(); },
    onError: (e) => { records = e; render(); },
  })];
  return () => stops.forEach((s) => s());
}

// ---- register -----------------------------------------------------------------

// registerBody turns the form into POST /services/register's body.
export function registerBody(f) {
  const body = {name: f.name.trim(), type: f.type.trim(), address: f.address.trim()};
  if (f.port !== '') body.port = Number(f.port);
  if (f.id.trim()) body.id = f.id.trim();
  const t = splitList(f.tags);
  if (t.length) body.tags = t;
  const meta = {};
  for (const line of f.metadata.split('\n')) {
    const l = line.trim();
    if (!l) continue;
    const at = l.indexOf('=');
    if (at < 0) meta[l] = ''; else meta[l.slice(0, at).trim()] = l.slice(at + 1).trim();
  }
  if (Object.keys(meta).length) body.metadata = meta;
  // The API names check errors "check", "check.http" or "check.tcp": the
  // form's control is named "check".
  if (f.check_kind === 'ttl') body.check = {ttl: f.check.trim()};
  else if (f.check_kind === 'http' || f.check_kind === 'tcp') {
    body.check = {[f.check_kind]: f.check.trim()};
    if (f.check_interval.trim()) body.check.interval = f.check_interval.trim();
  }
  return body;
}

function openRegister(env, svc) {
  // Ids of their own: the list's filters (f-type…) are on the page too.
  const ctl = (name, attrs = {}) => h('input', {type: 'text', name, id: `reg-${name}`, ...attrs});
  const kind = h('select', {name: 'check_kind', id: 'reg-check_kind'}, ['none', 'ttl', 'http', 'tcp'].map((k) => h('option', {value: k}, k)));
  const err = formError();
  const form = h('form', {class: 'form', novalidate: true},
    h('h2', {id: 'register-title'}, 'Register an instance'), err,
    h('div', {class: 'form-grid'},
      field('Service name', ctl('name', {value: svc ? svc.name : '', required: true, autocomplete: 'off'}), 'lower case, digits, . _ -'),
      field('Type', ctl('type', {value: svc ? svc.type : '', required: true}), 'one type per service, e.g. http'),
      field('Address', ctl('address', {value: '127.0.0.1'})),
      field('Port', h('input', {type: 'number', name: 'port', id: 'reg-port', min: 1, max: 65535})),
      field('Instance id', ctl('id'), 'default: NAME-ADDRESS-PORT'),
      field('Tags', ctl('tags'), 'separated by spaces or commas')),
    field('Metadata', h('textarea', {name: 'metadata', id: 'reg-metadata', rows: 3}), 'one key=value per line'),
    h('fieldset', {}, h('legend', {}, 'Health check'),
      h('div', {class: 'form-grid'},
        field('Kind', kind),
        field('TTL, URL or host:port', ctl('check'), 'ttl: 10s · http: http://h:p/health · tcp: h:p'),
        field('Interval', ctl('check_interval'), 'http and tcp, e.g. 5s'))),
    h('div', {class: 'actions'}, h('button', {type: 'submit'}, 'Register'), h('button', {type: 'button', class: 'secondary', onclick: () => dlg.close()}, 'Cancel')));
  const dlg = h('dialog', {'aria-labelledby': 'register-title'}, form);
  dlg.addEventListener('close', () => dlg.remove());
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const body = registerBody(Object.fromEntries(new FormData(form)));
    try {
      const res = await request('POST', '/services/register', {body});
      dlg.close();
      toast(`Registered ${res.data.id} of ${res.data.service}.`);
      env.go(`#/services/${encodeURIComponent(res.data.service)}`);
    } catch (e) {
      showFieldError(form, e);
    }
  });
  document.body.append(dlg);
  dlg.showModal();
}

export default {
  id: 'services',
  title: 'Services',
  render(main, {params, query, env}) {
    if (params.length >= 2) return renderInstance(main, params[0], params.slice(1).join('/'), env);
    if (params.length === 1) return renderService(main, params[0], query, env);
    return renderList(main, query, env);
  },
};
