// The console's shell: the list of pages, hash routing (#/page/param...),
// the header (this node, its leader, who is logged in) and the login
// dialog. A page is one module in `pages`: {id, title, when?(env),
// render(main, route) → cleanup}.

import {get, live, session} from './api.js';
import {h, set} from './dom.js';
import overview from './pages/overview.js';
import services from './pages/services.js';
import config from './pages/config.js';
import sessions from './pages/sessions.js';
import routes from './pages/routes.js';
import audit from './pages/audit.js';
import acl from './pages/acl.js';

const pages = [overview, services, config, sessions, routes, audit, acl];

// env is what pages may know about the session.
const env = {
  acl: {enabled: false, self: null},
  node: '',
  go: (hash) => { location.hash = hash; },
  login: () => openLogin(),
};

const main = document.getElementById('main');
let cleanup = null;
let current = '';

// parseHash reads #/page/a/b?x=1 into {page, params: ['a','b'], query}.
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, qs] = raw.split('?', 2);
  const parts = path.split('/').filter((p) => p !== '').map((p) => {
    try { return decodeURIComponent(p); } catch { return p; }
  });
  return {id: parts[0] || 'overview', params: parts.slice(1), query: new URLSearchParams(qs || '')};
}

function visible(p) { return !p.when || p.when(env); }

function renderNav(activeId) {
  set(document.getElementById('nav-list'), pages.filter(visible).map((p) =>
    h('li', {}, h('a', {href: `#/${p.id}`, 'aria-current': p.id === activeId ? 'page' : false}, p.title))));
}

function route() {
  const r = parseHash();
  const page = pages.find((p) => p.id === r.id && visible(p));
  if (cleanup) { cleanup(); cleanup = null; }
  renderNav(page ? page.id : '');
  main.replaceChildren();
  if (!page) {
    document.title = 'Not found · Nexus';
    set(main, h('h1', {}, 'Page not found'), h('p', {}, 'No page ', h('code', {}, location.hash), '. ', h('a', {href: '#/overview'}, 'Go to the overview'), '.'));
    return;
  }
  document.title = `${page.title} · Nexus`;
  try {
    cleanup = page.render(main, {params: r.params, query: r.query, env}) || null;
  } catch (e) {
    set(main, h('h1', {}, page.title), h('div', {class: 'banner error', role: 'alert'}, `This page failed: ${e.message}`));
    throw e; // and to the console, where the tests see it
  }
  // Move focus to the page for keyboard and screen-reader users when the
  // page changed (not when a filter changed the hash of the same page).
  if (current !== page.id) main.focus({preventScroll: true});
  current = page.id;
}

// ---- access control -----------------------------------------------------

async function detectACL() {
  try {
    const res = await get('/acl/token/self');
    env.acl = {enabled: true, self: res.data};
  } catch (e) {
    // 400 acl_disabled: off; 401/403: on, without a (good) token; an
    // unreachable node says nothing (the pages show that it is down).
    env.acl = {enabled: e.status === 401 || e.status === 403, self: null};
  }
  const loggedIn = !!env.acl.self;
  document.getElementById('login-button').hidden = !env.acl.enabled || loggedIn;
  document.getElementById('logout-button').hidden = !env.acl.enabled || !session.token();
  const who = env.acl.self;
  set(document.getElementById('who'), who ? `token: ${who.description || who.subject || who.accessor_id || 'anonymous'}` : '');
}

const dialog = document.getElementById('login-dialog');
const tokenInput = document.getElementById('login-token');
const loginError = document.getElementById('login-error');

function openLogin() {
  if (dialog.open) return;
  tokenInput.value = '';
  loginError.textContent = '';
  tokenInput.removeAttribute('aria-invalid');
  dialog.showModal();
  tokenInput.focus();
}

document.getElementById('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const previous = session.token();
  session.set(tokenInput.value.trim());
  try {
    await get('/acl/token/self');
  } catch (e) {
    if (previous) session.set(previous); else session.clear();
    tokenInput.setAttribute('aria-invalid', 'true');
    loginError.textContent = e.status === 401 ? `Not accepted: ${e.message}` : e.message;
    return;
  }
  dialog.close();
  await detectACL();
  route();
});
document.getElementById('login-cancel').addEventListener('click', () => dialog.close());
document.getElementById('login-button').addEventListener('click', openLogin);
document.getElementById('logout-button').addEventListener('click', async () => {
  session.clear();
  prompted = false;
  await detectACL();
  route();
});

// ---- header: this node and its leader -------------------------------------

function watchHeader() {
  const info = document.getElementById('node-info');
  live((q, signal) => get('/health', {signal}).then(async (health) => {
    let leader = null;
    try { leader = (await get('/cluster/leader', {signal})).data; } catch (e) { if (e.name === 'AbortError') throw e; }
    return {...health, data: {node: health.data.node, leader}};
  }), {
    interval: 2000,
    onData: ({data}) => {
      env.node = data.node;
      set(info, `node ${data.node} · `, data.leader
        ? (data.leader.node === data.node ? 'leader' : `leader ${data.leader.node}`)
        : h('span', {class: 'badge bad'}, 'no leader'));
    },
    onError: (e) => set(info, h('span', {class: 'badge bad'}, `node unreachable: ${e.message}`)),
  });
}

window.addEventListener('hashchange', route);
// The first 401 opens the login dialog; later ones leave it to the
// page's "Log in" button (a page that polls would reopen it for ever).
let prompted = false;
window.addEventListener('nexus:unauthenticated', () => {
  if (env.acl.enabled && !prompted) { prompted = true; openLogin(); }
});

(async () => {
  watchHeader();
  await detectACL();
  route();
})();
