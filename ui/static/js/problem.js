// How a page shows a failed read or write: a 403 is "not allowed" (never an
// empty page), a 401 offers the login, an unreachable node says so.
import {h} from './dom.js';

export function problem(err, what = 'this') {
  if (err.status === 403) {
    return h('div', {class: 'banner error', role: 'alert'},
      h('h2', {}, 'Not allowed'),
      h('p', {}, `Your token may not read ${what}. `, h('span', {class: 'muted'}, err.message)));
  }
  if (err.status === 401) {
    return h('div', {class: 'banner warn', role: 'alert'},
      h('h2', {}, 'Log in needed'),
      h('p', {}, `Access control is on: reading ${what} needs a token. `, h('span', {class: 'muted'}, err.message)),
      h('button', {type: 'button', onclick: () => document.getElementById('login-button').click()}, 'Log in'));
  }
  if (err.status === 0) {
    return h('div', {class: 'banner error', role: 'alert'}, h('h2', {}, 'The node does not answer'), h('p', {}, err.message, ' Retrying…'));
  }
  return h('div', {class: 'banner error', role: 'alert'},
    h('h2', {}, `Error ${err.status}${err.code ? ` (${err.code})` : ''}`), h('p', {}, err.message));
}
