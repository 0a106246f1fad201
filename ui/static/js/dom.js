// Small DOM helpers. Text always goes in through text nodes (never
// innerHTML), so what the API returns cannot inject markup.

// h builds an element: h('a', {href: '#/x', class: 'c', onclick: fn}, 'text', child...).
// Attributes named on* become listeners; true/false set or omit boolean
// attributes; null and undefined children are skipped, arrays flattened.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// set replaces the children of el.
export function set(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const nf = new Intl.NumberFormat('en');
export const num = (n) => (n === undefined || n === null || Number.isNaN(n) ? '—' : nf.format(n));

export function fmtTime(s) {
  if (!s) return '—';
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return s;
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function fmtDuration(ms) {
  if (ms === undefined || ms === null || Number.isNaN(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

export function fmtBytes(n) {
  if (n === undefined || n === null) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

// badge shows a status as text and colour (never colour alone).
export function badge(status, cls) {
  return h('span', {class: `badge ${cls || status || 'neutral'}`}, status || 'unknown');
}

export function tags(list) {
  return (list || []).map((t) => h('span', {class: 'tag'}, t));
}

// field is a labelled form control with its error line; the control's
// name is the API's field name, so errors land beside it.
export function field(label, control, hint) {
  const id = control.id || `f-${control.name.replace(/[^a-z0-9_-]/gi, '-')}`;
  control.id = id;
  const err = h('p', {class: 'field-error', id: `${id}-error`, role: 'alert'});
  const described = [err.id];
  let hintEl = null;
  if (hint) {
    hintEl = h('p', {class: 'hint', id: `${id}-hint`}, hint);
    described.push(hintEl.id);
  }
  control.setAttribute('aria-describedby', described.join(' '));
  const wrap = h('div', {class: control.type === 'checkbox' ? 'field check' : 'field'});
  if (control.type === 'checkbox') set(wrap, control, h('label', {for: id}, label), err);
  else set(wrap, h('label', {for: id}, label), control, hintEl, err);
  return wrap;
}

// fieldErrors shows an API error beside the control named by its field
// (or at the form's top when no control has that name) and clears the
// others. It returns the element it focused.
export function showFieldError(form, err) {
  clearFieldErrors(form);
  const name = err.field || '';
  const named = (n) => (n ? form.querySelector(`[name="${CSS.escape(n)}"]`) : null);
  // "rules[1].access" or "check.http" land on the control of their root
  // ("rules", "check"); the API's message names the full field.
  let control = named(name);
  if (!control && name) control = named(name.split(/[.[]/)[0]);
  if (control) {
    control.setAttribute('aria-invalid', 'true');
    const line = form.querySelector(`#${CSS.escape(control.id)}-error`);
    if (line) line.textContent = err.message;
    control.focus();
    return control;
  }
  const top = form.querySelector('.form-error');
  if (top) {
    set(top, err.message);
    top.hidden = false;
    top.focus();
  }
  return top;
}

export function clearFieldErrors(form) {
  for (const c of form.querySelectorAll('[aria-invalid]')) c.removeAttribute('aria-invalid');
  for (const e of form.querySelectorAll('.field-error')) e.textContent = '';
  const top = form.querySelector('.form-error');
  if (top) { top.replaceChildren(); top.hidden = true; }
}

// formError is the message area of a form for errors without a field.
export const formError = () => h('div', {class: 'banner error form-error', role: 'alert', tabindex: '-1', hidden: true});

// toast shows a short confirmation that screen readers announce.
export function toast(msg) {
  const box = document.getElementById('toast');
  const el = h('div', {}, msg);
  box.append(el);
  setTimeout(() => el.remove(), 4000);
}

// confirmDialog asks a yes/no question in a modal dialog.
export function confirmDialog(question, yes = 'Delete') {
  return new Promise((resolve) => {
    const ok = h('button', {type: 'submit', class: 'danger', value: 'yes'}, yes);
    const dlg = h('dialog', {'aria-label': question},
      h('form', {method: 'dialog', class: 'form'},
        h('p', {}, question),
        h('div', {class: 'actions'}, ok, h('button', {type: 'submit', class: 'secondary', value: 'no'}, 'Cancel'))));
    dlg.addEventListener('close', () => { resolve(dlg.returnValue === 'yes'); dlg.remove(); });
    document.body.append(dlg);
    dlg.showModal();
  });
}

// splitList reads "a, b c" as ["a","b","c"].
export const splitList = (s) => (s || '').split(/[\s,]+/).filter(Boolean);

// pager pages an array client-side: only `size` rows are in the DOM at a
// time, so a list of 10,000 stays responsive.
export function pager(total, page, size, onPage) {
  const pages = Math.max(1, Math.ceil(total / size));
  const from = total === 0 ? 0 : page * size + 1;
  const to = Math.min(total, (page + 1) * size);
  return h('div', {class: 'pager', role: 'navigation', 'aria-label': 'Pages of the list'},
    h('button', {type: 'button', class: 'secondary', disabled: page === 0, onclick: () => onPage(page - 1)}, 'Previous'),
    h('span', {'aria-live': 'polite'}, `${num(from)}–${num(to)} of ${num(total)}`),
    h('button', {type: 'button', class: 'secondary', disabled: page >= pages - 1, onclick: () => onPage(page + 1)}, 'Next'));
}

// keepFocus runs render (which replaces el's children) and gives the
// focus back to the control with the same data-key, so a table that a
// poll redraws every second does not take the focus from a keyboard user.
export function keepFocus(el, render) {
  const active = document.activeElement;
  const key = active && el.contains(active) ? active.dataset.key : undefined;
  render();
  if (key === undefined) return;
  const again = el.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (again) again.focus({preventScroll: true});
}
