// Maintenance of a node, a service or one instance (GET /maintenance and
// PUT or DELETE /maintenance/...): the records, the toggles that start it
// (with a reason, in a dialog) and end it, and the badge of an instance
// in maintenance. An instance in maintenance is critical and left out of
// discovery, the gateway, DNS and Consul ?passing.

import {liveGet, request} from './api.js';
import {clearFieldErrors, field, fmtTime, formError, h, showFieldError, toast} from './dom.js';

const e = encodeURIComponent;

// maintPath is the API path of a target {scope, node?, service?, id?}.
export function maintPath(t) {
  if (t.scope === 'node') return `/maintenance/nodes/${e(t.node)}`;
  if (t.scope === 'service') return `/maintenance/services/${e(t.service)}`;
  return `/maintenance/services/${e(t.service)}/instances/${e(t.id)}`;
}

// describe names a target in words.
export function describe(t) {
  if (t.scope === 'node') return `node ${t.node}`;
  if (t.scope === 'service') return `service ${t.service}`;
  return `instance ${t.id} of ${t.service}`;
}

// findRecord returns the record of GET /maintenance for a target, if any.
export function findRecord(records, t) {
  return (records || []).find((r) => r.scope === t.scope && (t.scope === 'node' ? r.node === t.node
    : r.service === t.service && (t.scope === 'service' || r.id === t.id))) || null;
}

// watch keeps GET /maintenance (a blocking query) fresh.
export const watch = (handlers) => liveGet('/maintenance', handlers);

// note says why the maintenance state is missing (an older node without
// the API, a token that may not read it).
export function note(err) {
  const why = err.status === 403 ? 'not allowed' : err.status === 404 ? 'this node has no maintenance API' : err.message;
  return h('p', {class: 'muted maint-note'}, `Maintenance state: ${why}.`);
}

// badge is the mark of an instance (its "maintenance" object) or a record
// in maintenance: the word, the reason as text and as a tooltip.
export function badge(m) {
  const reason = m.reason || 'no reason given';
  return h('span', {class: 'maint'},
    h('span', {class: 'badge warning', title: `In maintenance (${m.scope}) since ${fmtTime(m.since)}: ${reason}`}, 'maintenance'),
    ' ', h('span', {class: 'maint-reason'}, reason));
}

// counted says how many instances an answer changed, when it says.
const counted = (d) => (d && typeof d.instances === 'number' ? ` (${d.instances} instance${d.instances === 1 ? '' : 's'} changed status)` : '');

// start asks for a reason in a dialog and starts the maintenance of t;
// the API's errors show beside the reason (or at the top of the form).
export function start(t) {
  const reason = h('input', {type: 'text', name: 'reason', id: 'maint-reason', autocomplete: 'off'});
  const form = h('form', {class: 'form', novalidate: true},
    h('h2', {id: 'maint-title'}, `Start maintenance of ${describe(t)}`), formError(),
    h('p', {class: 'muted'}, t.scope === 'instance' ? 'The instance turns critical and leaves discovery, the gateway and DNS until the maintenance ends.'
      : `Every instance of the ${t.scope} turns critical and leaves discovery, the gateway and DNS until the maintenance ends.`),
    field('Reason', reason, 'shown with the instances; up to 256 characters'),
    h('div', {class: 'actions'}, h('button', {type: 'submit', id: 'maint-submit'}, 'Start maintenance'),
      h('button', {type: 'button', class: 'secondary', onclick: () => dlg.close()}, 'Cancel')));
  const dlg = h('dialog', {'aria-labelledby': 'maint-title'}, form);
  dlg.addEventListener('close', () => dlg.remove());
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    try {
      const res = await request('PUT', maintPath(t), {body: reason.value.trim() ? {reason: reason.value.trim()} : {}});
      dlg.close();
      toast(`Maintenance of ${describe(t)} started${counted(res.data)}.`);
    } catch (err) {
      showFieldError(form, err);
    }
  });
  document.body.append(dlg);
  dlg.showModal();
  reason.focus();
}

// end ends the maintenance of t; onError gets a failure.
export async function end(t, onError) {
  try {
    const res = await request('DELETE', maintPath(t));
    toast(res.data && res.data.ended === false ? `${describe(t)} was not in maintenance.` : `Maintenance of ${describe(t)} ended${counted(res.data)}.`);
  } catch (err) {
    onError(err);
  }
}

// toggle is the button that starts or ends the maintenance of t, as its
// record says; named after t when the page has several (a table).
export function toggle(t, record, {named, onError}) {
  const text = record ? 'End maintenance' : 'Start maintenance';
  return h('button', {type: 'button', class: 'secondary maint-toggle',
    'data-key': `maint:${maintPath(t)}`, 'aria-label': named ? `${text} of ${describe(t)}` : null,
    onclick: () => (record ? end(t, onError) : start(t))}, text);
}
