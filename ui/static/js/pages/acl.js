// Access control (shown when ACLs are on): tokens, policies and roles for
// managers. A token without acl rights sees "not allowed".
//
//   #/acl/tokens  #/acl/policies  #/acl/roles

import {liveGet, request} from '../api.js';
import {clearFieldErrors, confirmDialog, field, fmtTime, formError, h, set, showFieldError, splitList, toast} from '../dom.js';
import {problem} from '../problem.js';

const RESOURCES = ['service', 'config', 'route', 'session', 'cluster', 'audit', 'acl'];

// kinds describe each object list: its path, key, columns and form.
const kinds = {
  tokens: {
    title: 'Tokens', path: '/acl/tokens', key: 'accessor_id', what: 'tokens',
    columns: [['Accessor', (t) => h('code', {}, t.accessor_id)], ['Description', (t) => t.description || '—'],
      ['Policies', (t) => (t.policies || []).join(', ') || '—'], ['Roles', (t) => (t.roles || []).join(', ') || '—'],
      ['Created', (t) => fmtTime(t.create_time)], ['Expires', (t) => (t.expiration_time ? fmtTime(t.expiration_time) : 'never')]],
    fields: () => [
      field('Description', h('input', {type: 'text', name: 'description'})),
      field('Policies', h('input', {type: 'text', name: 'policies'}), 'names, separated by spaces or commas'),
      field('Roles', h('input', {type: 'text', name: 'roles'})),
      field('Expires in', h('input', {type: 'text', name: 'expires_in'}), 'e.g. 24h; empty: never')],
    body: (f) => ({description: f.description, policies: splitList(f.policies), roles: splitList(f.roles), ...(f.expires_in ? {expires_in: f.expires_in} : {})}),
  },
  policies: {
    title: 'Policies', path: '/acl/policies', key: 'name', what: 'policies',
    columns: [['Name', (p) => p.name], ['Description', (p) => p.description || '—'],
      ['Rules', (p) => h('ul', {}, (p.rules || []).map((r) => h('li', {class: 'mono'}, `${r.resource} ${r.prefix || '*'} ${r.access}`)))]],
    fields: () => [
      field('Name', h('input', {type: 'text', name: 'name', required: true})),
      field('Description', h('input', {type: 'text', name: 'description'})),
      field('Rules', h('textarea', {name: 'rules', rows: 5, spellcheck: 'false'}),
        `one rule a line: RESOURCE PREFIX ACCESS, e.g. "service web write" (resources ${RESOURCES.join(', ')}; access read, write, deny; "*" for every prefix)`)],
    body: (f) => ({name: f.name.trim(), description: f.description, rules: parseRules(f.rules)}),
  },
  roles: {
    title: 'Roles', path: '/acl/roles', key: 'name', what: 'roles',
    columns: [['Name', (r) => r.name], ['Description', (r) => r.description || '—'], ['Policies', (r) => (r.policies || []).join(', ') || '—']],
    fields: () => [
      field('Name', h('input', {type: 'text', name: 'name', required: true})),
      field('Description', h('input', {type: 'text', name: 'description'})),
      field('Policies', h('input', {type: 'text', name: 'policies'}), 'names, separated by spaces or commas')],
    body: (f) => ({name: f.name.trim(), description: f.description, policies: splitList(f.policies)}),
  },
};

// parseRules reads "service web write" lines into the API's rules.
export function parseRules(text) {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
    const [resource, prefix, access] = l.split(/\s+/);
    return access === undefined ? {resource, prefix: '', access: prefix} : {resource, prefix: prefix === '*' ? '' : prefix, access};
  });
}

function renderKind(main, kind, env) {
  const k = kinds[kind];
  const list = h('div', {}, h('p', {class: 'muted'}, 'Loading…'));
  const err = formError();
  const secret = h('div', {'aria-live': 'polite'});
  const form = h('form', {class: 'form', novalidate: true, id: `acl-${kind}-form`}, err, h('div', {class: 'form-grid'}, k.fields()),
    h('div', {class: 'actions'}, h('button', {type: 'submit'}, `Create`)));
  set(main, h('h1', {}, 'Access control'),
    h('nav', {class: 'nav', 'aria-label': 'Access control objects'}, h('ul', {}, Object.entries(kinds).map(([id, x]) =>
      h('li', {}, h('a', {href: `#/acl/${id}`, 'aria-current': id === kind ? 'page' : false}, x.title))))),
    h('h2', {}, k.title), list, h('h2', {}, `New ${kind.replace(/s$/, '').replace(/ie$/, 'y')}`), secret, form);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    try {
      const res = await request('POST', k.path, {body: k.body(Object.fromEntries(new FormData(form)))});
      form.reset();
      toast(`Created ${res.data[k.key]}.`);
      if (res.data.secret_id) {
        set(secret, h('div', {class: 'banner warn', role: 'alert'}, h('h3', {}, 'The new token\'s secret (shown only now)'),
          h('p', {class: 'secret', id: 'new-secret'}, res.data.secret_id)));
      }
    } catch (e) { showFieldError(form, e); }
  });

  return liveGet(k.path, {
    onData: ({data}) => set(list, data.length === 0 ? h('p', {}, 'None.') : h('div', {class: 'table-wrap'}, h('table', {id: `acl-${kind}`},
      h('thead', {}, h('tr', {}, k.columns.map(([c]) => h('th', {scope: 'col'}, c)), h('th', {scope: 'col'}, h('span', {class: 'sr-only'}, 'Actions')))),
      h('tbody', {}, data.map((o) => h('tr', {},
        k.columns.map(([, f]) => h('td', {}, f(o))),
        h('td', {}, h('button', {type: 'button', class: 'secondary', 'aria-label': `Delete ${o[k.key]}`, onclick: async () => {
          if (!(await confirmDialog(`Delete ${kind.replace(/s$/, '')} ${o[k.key]}?`))) return;
          try { await request('DELETE', `${k.path}/${encodeURIComponent(o[k.key])}`); toast(`Deleted ${o[k.key]}.`); } catch (e) { list.prepend(problem(e, k.what)); }
        }}, 'Delete')))))))),
    onError: (e) => { set(list, problem(e, k.what)); form.hidden = e.status === 403 || e.status === 401; },
  });
}

export default {
  id: 'acl',
  title: 'Access control',
  when: (env) => env.acl.enabled,
  render(main, {params, env}) {
    return renderKind(main, kinds[params[0]] ? params[0] : 'tokens', env);
  },
};
