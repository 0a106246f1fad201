// Configuration: keys as a tree by prefix, a key's JSON value, editing
// with validation and compare-and-set. A CAS conflict shows the value that
// won, and the draft stays.
//
//   #/config?prefix=P    the tree
//   #/config/KEY          the tree and one key

import {get, keyPath, liveGet, request} from '../api.js';
import {clearFieldErrors, confirmDialog, field, formError, h, num, set, showFieldError, toast} from '../dom.js';
import {problem} from '../problem.js';

const pretty = (v) => JSON.stringify(v, null, 2);

// jsonError validates a draft: '' when it is JSON, else the parser's message.
export function jsonError(text) {
  if (!text.trim()) return 'A value is required (any JSON: "text", 20, true, {"a":1}, [1,2]).';
  try { JSON.parse(text); return ''; } catch (e) { return `Not valid JSON: ${e.message}`; }
}

// tree nests keys by their "/"-separated segments.
function buildTree(keys) {
  const root = {dirs: new Map(), keys: []};
  for (const key of keys) {
    const parts = key.split('/');
    let node = root;
    for (let i = 0; i < parts.length - 1; i++) {
      const p = parts.slice(0, i + 1).join('/') + '/';
      if (!node.dirs.has(p)) node.dirs.set(p, {name: parts[i], dirs: new Map(), keys: []});
      node = node.dirs.get(p);
    }
    node.keys.push(key);
  }
  return root;
}

function renderTree(node, selected, openAll, held) {
  return h('ul', {},
    [...node.dirs.entries()].map(([prefix, d]) => h('li', {},
      h('details', {open: openAll || (selected || '').startsWith(prefix)},
        h('summary', {}, `${d.name}/`),
        renderTree(d, selected, openAll, held)))),
    node.keys.map((k) => h('li', {}, h('a', {href: `#/config/${keyPath(k)}`, 'aria-current': k === selected ? 'true' : false}, k.split('/').pop()),
      held.has(k) ? h('span', {class: 'muted'}, ' (locked)') : null)));
}

// valueEditor is a labelled JSON textarea that validates as you type.
function valueEditor(id, text, onValid) {
  const area = h('textarea', {name: 'value', id, rows: 12, spellcheck: 'false'});
  area.value = text;
  const wrap = field('Value (JSON)', area);
  const check = () => {
    const msg = jsonError(area.value);
    if (msg) area.setAttribute('aria-invalid', 'true'); else area.removeAttribute('aria-invalid');
    wrap.querySelector('.field-error').textContent = msg;
    onValid(!msg);
  };
  area.addEventListener('input', check);
  return {wrap, area, check};
}

// conflictBanner shows a CAS conflict with the value that is there now.
function conflictBanner(key, mine, current, {onOverwrite, onReload}) {
  return h('div', {class: 'banner warn', role: 'alert', id: 'cas-conflict', tabindex: '-1'},
    h('h2', {}, 'Conflict: the key changed while you edited it'),
    current
      ? h('p', {}, `You started from version ${mine}; ${key} is now at version ${current.modify_index}. Your draft is kept below. The current value:`)
      : h('p', {}, `You started from version ${mine}; ${key} has been deleted since.`),
    current ? h('pre', {class: 'current-value'}, pretty(current.value)) : null,
    h('div', {class: 'actions'},
      h('button', {type: 'button', id: 'cas-overwrite', onclick: onOverwrite}, current ? 'Save my draft over it' : 'Create it again with my draft'),
      current ? h('button', {type: 'button', class: 'secondary', id: 'cas-reload', onclick: onReload}, 'Discard my draft, edit the current value') : null));
}

function renderKey(panel, key, env) {
  let entry = null;
  let editing = null; // {base: modify_index the draft started from}
  const view = h('div', {});
  set(panel, h('h2', {class: 'mono', id: 'config-key'}, key), view);

  function show() {
    if (editing) return;
    if (!entry) return;
    const lock = entry.session ? h('p', {class: 'banner', id: 'config-lock'}, 'Held as a lock by session ',
      h('a', {class: 'mono', href: `#/sessions/${encodeURIComponent(entry.session)}`}, entry.session),
      ` (lock index ${num(entry.lock_index)}).`) : null;
    set(view,
      h('p', {class: 'muted'}, `Version (modify_index) ${num(entry.modify_index)}`),
      lock,
      h('pre', {id: 'config-value'}, pretty(entry.value)),
      h('div', {class: 'actions'},
        h('button', {type: 'button', id: 'config-edit', onclick: () => edit(pretty(entry.value), entry.modify_index)}, 'Edit'),
        h('button', {type: 'button', class: 'danger', id: 'config-delete', onclick: del}, 'Delete')));
  }

  function edit(text, base, conflict) {
    editing = {base};
    const save = h('button', {type: 'submit', id: 'config-save'}, 'Save');
    const ed = valueEditor('f-value', text, (ok) => { save.disabled = !ok; });
    const err = formError();
    const stale = h('p', {class: 'banner warn', id: 'stale-note', hidden: true});
    const form = h('form', {class: 'form', novalidate: true}, conflict || null, stale, err, ed.wrap,
      h('p', {class: 'muted'}, `Saving checks that the key is still at version ${base} (compare-and-set).`),
      h('div', {class: 'actions'}, save, h('button', {type: 'button', class: 'secondary', onclick: () => { editing = null; show(); }}, 'Cancel')));
    // With a conflict shown, the stale note would say the same twice.
    editing.stale = conflict ? null : stale;
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      ed.check();
      if (save.disabled) { ed.area.focus(); return; }
      clearFieldErrors(form);
      try {
        await request('PUT', `/config/${keyPath(key)}`, {query: {cas: base}, body: ed.area.value});
        toast(`Saved ${key}.`);
        editing = null;
        show();
      } catch (e) {
        if (e.code === 'cas_conflict') {
          let current = null;
          try { current = (await get(`/config/${keyPath(key)}`)).data; } catch (g) { if (g.status !== 404) { showFieldError(form, g); return; } }
          const draft = ed.area.value;
          const banner = conflictBanner(key, base, current, {
            onOverwrite: () => edit(draft, current ? current.modify_index : 0).requestSubmit(),
            onReload: () => edit(pretty(current.value), current.modify_index),
          });
          edit(draft, base, banner);
          banner.focus();
          return;
        }
        showFieldError(form, e);
      }
    });
    set(view, form);
    ed.check();
    ed.area.focus();
    noteStale();
    return form;
  }

  // noteStale warns, while editing, that the key moved on.
  function noteStale() {
    if (!editing || !editing.stale) return;
    const moved = entry ? entry.modify_index !== editing.base : editing.base !== 0;
    editing.stale.hidden = !moved;
    set(editing.stale, entry ? `${key} changed since you started editing (now version ${entry.modify_index}); saving will report a conflict.` : `${key} was deleted since you started editing.`);
  }

  async function del() {
    if (!(await confirmDialog(`Delete ${key}?`))) return;
    try {
      await request('DELETE', `/config/${keyPath(key)}`, {query: {cas: entry.modify_index}});
      toast(`Deleted ${key}.`);
      env.go('#/config');
    } catch (e) { view.prepend(problem(e, key)); }
  }

  return liveGet(`/config/${keyPath(key)}`, {
    onData: ({data}) => { entry = data; show(); noteStale(); },
    onError: (e) => {
      if (e.status === 404) {
        entry = null;
        noteStale();
        if (!editing) {
          set(view, h('p', {}, `No key ${key}.`), h('div', {class: 'actions'},
            h('button', {type: 'button', onclick: () => edit('', 0)}, 'Create it')));
        }
        return;
      }
      if (!editing) set(view, problem(e, key));
    },
  });
}

function openNewKey(env, prefix) {
  const keyInput = h('input', {type: 'text', name: 'key', id: 'new-key', value: prefix || '', required: true, autocomplete: 'off'});
  const save = h('button', {type: 'submit'}, 'Create');
  const ed = valueEditor('new-value', '', (ok) => { save.disabled = !ok; });
  const form = h('form', {class: 'form', novalidate: true}, h('h2', {id: 'newkey-title'}, 'New key'), formError(),
    field('Key', keyInput, 'A-Z a-z 0-9 . _ / -, no leading /'), ed.wrap,
    h('div', {class: 'actions'}, save, h('button', {type: 'button', class: 'secondary', onclick: () => dlg.close()}, 'Cancel')));
  const dlg = h('dialog', {'aria-labelledby': 'newkey-title'}, form);
  dlg.addEventListener('close', () => dlg.remove());
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    ed.check();
    if (save.disabled) { ed.area.focus(); return; }
    clearFieldErrors(form);
    const key = keyInput.value.trim();
    if (!key) { showFieldError(form, {field: 'key', message: 'is required'}); return; }
    try {
      await request('PUT', `/config/${keyPath(key)}`, {query: {cas: 0}, body: ed.area.value});
      dlg.close();
      toast(`Created ${key}.`);
      env.go(`#/config/${keyPath(key)}`);
    } catch (e) {
      if (e.code === 'cas_conflict') e.field = 'key';
      showFieldError(form, e);
    }
  });
  document.body.append(dlg);
  ed.check();
  dlg.showModal();
}

export default {
  id: 'config',
  title: 'Configuration',
  render(main, {params, query, env}) {
    const key = params.join('/');
    const prefix = query.get('prefix') || '';
    const prefixInput = h('input', {type: 'search', name: 'prefix', value: prefix, placeholder: 'app/'});
    const treeBox = h('nav', {class: 'tree', 'aria-label': 'Configuration keys'}, h('p', {class: 'muted'}, 'Loading…'));
    const panel = h('section', {'aria-live': 'polite'});
    const count = h('p', {class: 'muted'});
    const filter = h('form', {class: 'toolbar', role: 'search', onsubmit: (e) => {
      e.preventDefault();
      env.go(`#/config${key ? `/${keyPath(key)}` : ''}${prefixInput.value ? `?prefix=${encodeURIComponent(prefixInput.value)}` : ''}`);
    }}, field('Prefix', prefixInput), h('button', {type: 'submit', class: 'secondary'}, 'Filter'));
    set(main, h('div', {class: 'toolbar'}, h('h1', {}, 'Configuration'), h('span', {class: 'spacer'}),
      h('button', {type: 'button', onclick: () => openNewKey(env, prefix)}, 'New key')),
    h('div', {class: 'split'}, h('div', {}, filter, count, treeBox), panel));
    if (!key) set(panel, h('p', {class: 'muted'}, 'Choose a key in the tree.'));

    const stops = [liveGet('/config', {
      all: true,
      query: {prefix},
      onData: ({data}) => {
        set(count, `${num(data.length)} keys${prefix ? ` under ${prefix}` : ''}${env.acl.enabled ? ' that your token may read' : ''}.`);
        set(treeBox, data.length ? renderTree(buildTree(data.map((e) => e.key)), key, data.length <= 100, new Set(data.filter((e) => e.session).map((e) => e.key))) : h('p', {}, 'No keys.'));
      },
      onError: (e) => set(treeBox, problem(e, 'the configuration')),
    })];
    if (key) stops.push(renderKey(panel, key, env));
    return () => stops.forEach((s) => s());
  },
};
