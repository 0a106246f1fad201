// Gateway routes: the list with each route's request and error rate on
// this node (from /metrics), a form to create or edit one with the API's
// field errors beside the fields, delete.
//
//   #/routes          the list
//   #/routes?new=1    create
//   #/routes/ID       edit

import {get, getAll, live, liveGet, request} from '../api.js';
import {clearFieldErrors, confirmDialog, field, formError, h, keepFocus, num, set, showFieldError, splitList, tags, toast} from '../dom.js';
import {parse} from '../prom.js';
import {problem} from '../problem.js';

// Route settings edited as JSON in the form's "more" box.
const EXTRA = ['circuit_breaker', 'cache', 'cors', 'auth', 'compression', 'metadata'];

// rates turns two scrapes of nexus_gateway_requests_total into requests
// per second and the share of 5xx answers, per route.
export function rates(prev, cur) {
  const out = new Map();
  if (!prev) return out;
  const dt = (cur.t - prev.t) / 1000;
  for (const [route, c] of cur.byRoute) {
    const p = prev.byRoute.get(route) || {total: 0, errors: 0};
    const total = Math.max(0, c.total - p.total);
    const errors = Math.max(0, c.errors - p.errors);
    out.set(route, {rps: dt > 0 ? total / dt : 0, errorRate: total > 0 ? errors / total : 0});
  }
  return out;
}

function scrape(text) {
  const byRoute = new Map();
  for (const s of parse(text)) {
    if (s.name !== 'nexus_gateway_requests_total') continue;
    const r = byRoute.get(s.labels.route) || {total: 0, errors: 0};
    r.total += s.value;
    if (s.labels.class === '5xx') r.errors += s.value;
    byRoute.set(s.labels.route, r);
  }
  return {t: performance.now(), byRoute};
}

// routeBody turns the form's values into the route the API takes.
export function routeBody(f) {
  const r = {id: f.id.trim(), service: f.service.trim(), paths: splitList(f.paths), match: f.match,
    load_balancer: f.load_balancer, strip_path: f.strip_path === 'on', preserve_host: f.preserve_host === 'on'};
  const hosts = splitList(f.hosts);
  if (hosts.length) r.hosts = hosts;
  const methods = splitList(f.methods).map((m) => m.toUpperCase());
  if (methods.length) r.methods = methods;
  if (f.priority.trim()) r.priority = Number(f.priority);
  if (f.hash_on.trim()) r.hash_on = f.hash_on.trim();
  if (f.timeout.trim()) r.timeout = f.timeout.trim();
  if (f.retries.trim()) r.retries = Number(f.retries);
  if (f['rate_limit.rps'].trim()) {
    r.rate_limit = {rps: Number(f['rate_limit.rps']), key: f['rate_limit.key'].trim() || 'ip', scope: f['rate_limit.scope']};
    if (f['rate_limit.burst'].trim()) r.rate_limit.burst = Number(f['rate_limit.burst']);
  }
  if (f.extra.trim()) Object.assign(r, JSON.parse(f.extra));
  return r;
}

function renderForm(main, id, env) {
  const editing = !!id;
  const input = (name, attrs = {}) => h('input', {type: 'text', name, autocomplete: 'off', ...attrs});
  const select = (name, options) => h('select', {name}, options.map((o) => h('option', {value: o}, o)));
  const check = (name) => h('input', {type: 'checkbox', name});
  const extra = h('textarea', {name: 'extra', rows: 5, spellcheck: 'false', placeholder: '{"circuit_breaker": {"consecutive_failures": 5, "open_for": "30s"}}'});
  const err = formError();
  const form = h('form', {class: 'form', novalidate: true, id: 'route-form'}, err,
    h('div', {class: 'form-grid'},
      field('Route id', input('id', {required: true, readonly: editing}), editing ? 'the id of an existing route does not change' : 'letters, digits, . _ : -'),
      field('Service', input('service', {required: true, list: 'route-services'}), 'the upstream service'),
      field('Paths', input('paths', {required: true}), 'e.g. /api/ (several: spaces or commas)'),
      field('Match', select('match', ['prefix', 'exact'])),
      field('Hosts', input('hosts'), 'empty: every host; *.example for a wildcard'),
      field('Methods', input('methods'), 'empty: every method; e.g. GET POST'),
      field('Load balancer', select('load_balancer', ['round_robin', 'least_conn', 'random', 'consistent_hash'])),
      field('Hash on', input('hash_on'), 'consistent_hash only: header:NAME, ip…'),
      field('Timeout', input('timeout'), 'default 30s'),
      field('Retries', h('input', {type: 'number', name: 'retries', min: 0}), 'default 1'),
      field('Priority', h('input', {type: 'number', name: 'priority'}), 'higher wins a tie')),
    h('div', {class: 'form-grid'}, field('Strip the matched path prefix', check('strip_path')), field('Preserve the Host header', check('preserve_host'))),
    h('fieldset', {}, h('legend', {}, 'Rate limit (optional)'), h('div', {class: 'form-grid'},
      field('Requests per second', h('input', {type: 'number', name: 'rate_limit.rps', min: 0, step: 'any'})),
      field('Burst', h('input', {type: 'number', name: 'rate_limit.burst', min: 0})),
      field('Key', input('rate_limit.key'), 'ip, header:NAME or jwt:CLAIM'),
      field('Scope', select('rate_limit.scope', ['node', 'cluster'])))),
    field('More settings (JSON object)', extra, `${EXTRA.join(', ')}: see docs/api.md`),
    h('datalist', {id: 'route-services'}),
    h('div', {class: 'actions'}, h('button', {type: 'submit'}, editing ? 'Save' : 'Create'), h('a', {class: 'button secondary', href: '#/routes'}, 'Cancel')));
  const status = h('div', {});
  set(main, h('p', {}, h('a', {href: '#/routes'}, '← Routes')), h('h1', {}, editing ? `Edit route ${id}` : 'New route'), status, form);

  getAll('/services').then(({data}) => set(form.querySelector('#route-services'), data.map((s) => h('option', {value: s.name})))).catch(() => {});

  if (editing) {
    form.hidden = true;
    get(`/gateway/routes/${encodeURIComponent(id)}`).then(({data}) => {
      const c = (n) => form.elements.namedItem(n);
      c('id').value = data.id;
      c('service').value = data.service;
      c('paths').value = (data.paths || []).join(' ');
      c('match').value = data.match || 'prefix';
      c('hosts').value = (data.hosts || []).join(' ');
      c('methods').value = (data.methods || []).join(' ');
      c('load_balancer').value = data.load_balancer || 'round_robin';
      c('hash_on').value = data.hash_on || '';
      c('timeout').value = data.timeout || '';
      c('retries').value = data.retries ?? '';
      c('priority').value = data.priority || '';
      c('strip_path').checked = !!data.strip_path;
      c('preserve_host').checked = !!data.preserve_host;
      if (data.rate_limit) {
        c('rate_limit.rps').value = data.rate_limit.rps;
        c('rate_limit.burst').value = data.rate_limit.burst || '';
        c('rate_limit.key').value = data.rate_limit.key || '';
        c('rate_limit.scope').value = data.rate_limit.scope || 'node';
      }
      const more = {};
      for (const k of EXTRA) if (data[k] !== undefined && data[k] !== null) more[k] = data[k];
      extra.value = Object.keys(more).length ? JSON.stringify(more, null, 2) : '';
      form.hidden = false;
    }).catch((e) => set(status, problem(e, `route ${id}`)));
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const values = {};
    for (const el of form.elements) if (el.name) values[el.name] = el.type === 'checkbox' ? (el.checked ? 'on' : '') : el.value;
    let body;
    try {
      body = routeBody(values);
    } catch (e) {
      showFieldError(form, {field: 'extra', message: `Not a JSON object: ${e.message}`});
      return;
    }
    try {
      if (editing) await request('PUT', `/gateway/routes/${encodeURIComponent(id)}`, {body});
      else await request('POST', '/gateway/routes', {body});
      toast(`${editing ? 'Saved' : 'Created'} route ${body.id}.`);
      env.go('#/routes');
    } catch (e) {
      // Errors in the settings of the "more" box land beside it (the
      // message names the field).
      if (EXTRA.includes((e.field || '').split(/[.[]/)[0])) e.field = 'extra';
      if (e.code === 'conflict' && !e.field) e.field = 'id';
      showFieldError(form, e);
    }
  });
  return null;
}

function renderList(main, env) {
  const body = h('div', {}, h('p', {class: 'muted'}, 'Loading…'));
  const note = h('p', {class: 'muted'}, 'Rates are this node\'s gateway, between its last two /metrics readings (every 2 s).');
  set(main, h('div', {class: 'toolbar'}, h('h1', {}, 'Gateway routes'), h('span', {class: 'spacer'}),
    h('a', {class: 'button', href: '#/routes?new=1'}, 'New route')), note, body);
  let list = null;
  let prev = null;
  let rate = new Map();
  let metricsErr = null;

  function render() {
    if (!list) return;
    const cell = (r, f) => {
      if (metricsErr) return h('span', {class: 'muted'}, metricsErr.status === 403 ? 'not allowed' : '—');
      const x = rate.get(r.id);
      return x ? f(x) : h('span', {class: 'muted'}, '—');
    };
    // The rates redraw the table every 2 s: a focused button keeps the focus.
    keepFocus(body, () => set(body, list.length === 0 ? h('p', {}, 'No routes yet.') : h('div', {class: 'table-wrap'}, h('table', {id: 'routes-table'},
      h('caption', {class: 'sr-only'}, 'Gateway routes'),
      h('thead', {}, h('tr', {}, ['Route', 'Paths', 'Hosts', 'Methods', 'Service', 'Balancer', 'Requests/s', '5xx'].map((c, i) =>
        h('th', {scope: 'col', class: i >= 6 ? 'num' : i === 2 || i === 5 ? 'hide-narrow' : null}, c)), h('th', {scope: 'col'}, h('span', {class: 'sr-only'}, 'Actions')))),
      h('tbody', {}, list.map((r) => h('tr', {'data-route': r.id},
        h('th', {scope: 'row'}, h('a', {href: `#/routes/${encodeURIComponent(r.id)}`}, r.id)),
        h('td', {class: 'mono'}, (r.paths || []).join(' '), r.match === 'exact' ? h('span', {class: 'muted'}, ' (exact)') : null),
        h('td', {class: 'hide-narrow'}, (r.hosts || []).length ? tags(r.hosts) : h('span', {class: 'muted'}, 'any')),
        h('td', {}, (r.methods || []).length ? r.methods.join(' ') : h('span', {class: 'muted'}, 'any')),
        h('td', {}, h('a', {href: `#/services/${encodeURIComponent(r.service)}`}, r.service)),
        h('td', {class: 'hide-narrow'}, r.load_balancer),
        h('td', {class: 'num rate'}, cell(r, (x) => x.rps.toFixed(1))),
        h('td', {class: 'num rate'}, cell(r, (x) => `${(100 * x.errorRate).toFixed(1)} %`)),
        h('td', {}, h('button', {type: 'button', class: 'secondary', 'data-key': `delete:${r.id}`, 'aria-label': `Delete route ${r.id}`, onclick: async () => {
          if (!(await confirmDialog(`Delete route ${r.id}?`))) return;
          try { await request('DELETE', `/gateway/routes/${encodeURIComponent(r.id)}`); toast(`Deleted route ${r.id}.`); } catch (e) { body.prepend(problem(e, `route ${r.id}`)); }
        }}, 'Delete')))))))));
  }

  const stops = [
    liveGet('/gateway/routes', {all: true, onData: ({data}) => { list = data; render(); }, onError: (e) => { list = null; set(body, problem(e, 'the routes')); }}),
    live((q, signal) => get('/metrics', {signal, text: true}), {
      interval: 2000,
      onData: ({data}) => { const cur = scrape(data); rate = rates(prev, cur); prev = cur; metricsErr = null; render(); },
      onError: (e) => { metricsErr = e; render(); },
    }),
  ];
  return () => stops.forEach((s) => s());
}

export default {
  id: 'routes',
  title: 'Gateway routes',
  render(main, {params, query, env}) {
    if (params.length) return renderForm(main, params.join('/'), env);
    if (query.get('new')) return renderForm(main, '', env);
    return renderList(main, env);
  },
};
