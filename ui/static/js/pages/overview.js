// Overview: who leads, the members, autopilot, what the catalog holds and
// how far the audit archive lags. /status and /cluster/raft do not block,
// so they are polled every second; the catalog and audit settings are
// blocking queries; the autopilot and lag gauges come from /metrics.

import {get, getAll, live, liveGet} from '../api.js';
import {badge, fmtBytes, fmtDuration, h, keepFocus, num, set} from '../dom.js';
import * as maint from '../maintenance.js';
import {parse, value} from '../prom.js';
import {problem} from '../problem.js';

// tolerance is autopilot's failure tolerance as this node's gossip sees
// it: voters alive minus the quorum of the voters.
export function gossipTolerance(servers, members) {
  const status = new Map(members.map((m) => [m.name, m.status]));
  const voters = servers.filter((s) => s.suffrage === 'voter');
  const alive = voters.filter((s) => status.get(s.id) === 'alive').length;
  return {voters: voters.length, alive, tolerance: Math.max(0, alive - (Math.floor(voters.length / 2) + 1))};
}

// maintCell shows a node's maintenance (from GET /maintenance) and its toggle.
function maintCell(node, records, onError) {
  const t = {scope: 'node', node};
  const r = maint.findRecord(records, t);
  return [r ? maint.badge(r) : h('span', {class: 'muted'}, 'no'), ' ', maint.toggle(t, r, {named: true, onError})];
}

export default {
  id: 'overview',
  title: 'Overview',
  render(main) {
    const leaderCard = h('section', {class: 'card', 'aria-labelledby': 'ov-leader'});
    const autopilotCard = h('section', {class: 'card', 'aria-labelledby': 'ov-autopilot'});
    const catalogCard = h('section', {class: 'card', 'aria-labelledby': 'ov-catalog'});
    const auditCard = h('section', {class: 'card', 'aria-labelledby': 'ov-audit'});
    const members = h('div', {});
    const memberStatus = h('div', {});
    set(main,
      h('h1', {}, 'Overview'),
      h('div', {class: 'cards'}, leaderCard, autopilotCard, catalogCard, auditCard),
      h('h2', {id: 'ov-members'}, 'Members'),
      memberStatus, members);
    const title = (id, text) => h('h2', {id}, text);
    set(leaderCard, title('ov-leader', 'Leader'), h('p', {class: 'muted'}, 'Loading…'));
    set(autopilotCard, title('ov-autopilot', 'Autopilot'), h('p', {class: 'muted'}, 'Loading…'));
    set(catalogCard, title('ov-catalog', 'Catalog'), h('p', {class: 'muted'}, 'Loading…'));
    set(auditCard, title('ov-audit', 'Audit archive'), h('p', {class: 'muted'}, 'Loading…'));

    let cluster = null; // {status, raft, lastContact, knownLeader}
    let gauges = null; // samples of /metrics, or an error
    let statusCounts = null; // instances by status
    let sessions = null; // how many, or an error
    let maintenance = null; // records of GET /maintenance, or an error

    function renderCluster() {
      if (!cluster) return;
      const {status: st, raft, lastContact, knownLeader} = cluster;
      const leader = st.raft.leader || '';
      set(leaderCard, title('ov-leader', 'Leader'),
        h('p', {class: 'big', id: 'ov-leader-name'}, leader || h('span', {class: 'badge bad'}, 'no leader')),
        h('dl', {class: 'kv'},
          h('dt', {}, 'Term'), h('dd', {id: 'ov-term'}, num(st.raft.term)),
          h('dt', {}, 'This node'), h('dd', {}, `${st.node} (${st.raft.state.toLowerCase()})`),
          h('dt', {}, 'Last contact'), h('dd', {}, st.raft.state.toLowerCase() === 'leader' ? 'is the leader'
            : knownLeader ? `${fmtDuration(lastContact)} ago` : 'no leader known'),
          h('dt', {}, 'Commit / applied'), h('dd', {}, `${num(st.raft.commit_index)} / ${num(st.raft.applied_index)}`),
          h('dt', {}, 'Version'), h('dd', {}, st.version || '—')));

      const suffrage = new Map(raft.servers.map((s) => [s.id, s.suffrage]));
      const records = Array.isArray(maintenance) ? maintenance : null;
      const onMaintError = (e) => set(memberStatus, problem(e, 'maintenance'));
      keepFocus(members, () => set(members, h('div', {class: 'table-wrap'}, h('table', {'aria-labelledby': 'ov-members', id: 'ov-members-table'},
        h('thead', {}, h('tr', {}, ['Name', 'Gossip', 'Raft role', 'Suffrage', 'Last contact', 'Version', 'Maintenance', 'Admin API', 'Gossip address']
          .map((c, i) => h('th', {scope: 'col', class: i >= 7 ? 'hide-narrow' : null}, c)))),
        h('tbody', {}, st.members.map((m) => h('tr', {'data-member': m.name},
          h('th', {scope: 'row'}, m.name, m.name === st.node ? h('span', {class: 'muted'}, ' (this node)') : null),
          h('td', {}, badge(m.status)),
          h('td', {}, m.raft || '—'),
          h('td', {}, suffrage.get(m.name) || 'not in Raft'),
          h('td', {}, m.name !== st.node ? h('span', {class: 'muted', title: 'Each node knows only its own contact with the leader'}, 'on that node')
            : m.raft === 'leader' ? 'is the leader' : fmtDuration(lastContact)),
          h('td', {}, m.version || '—'),
          h('td', {class: 'maint-cell'}, records ? maintCell(m.name, records, onMaintError) : '—'),
          h('td', {class: 'hide-narrow mono'}, m.http_addr || '—'),
          h('td', {class: 'hide-narrow mono'}, m.address || '—')))))),
      maintenance instanceof Error ? maint.note(maintenance) : null));

      const est = gossipTolerance(raft.servers, st.members);
      const healthy = gauges && !(gauges instanceof Error) ? value(gauges, 'nexus_autopilot_healthy') : undefined;
      const tolerance = gauges && !(gauges instanceof Error) ? value(gauges, 'nexus_autopilot_failure_tolerance') : undefined;
      const rows = [];
      if (healthy !== undefined) {
        rows.push(h('dt', {}, 'Health'), h('dd', {}, badge(healthy === 1 ? 'healthy' : 'unhealthy', healthy === 1 ? 'ok' : 'bad')));
        rows.push(h('dt', {}, 'Failure tolerance'), h('dd', {id: 'ov-tolerance'}, num(tolerance)));
      } else {
        rows.push(h('dt', {}, 'Failure tolerance'), h('dd', {id: 'ov-tolerance'}, `${num(est.tolerance)} (gossip view of ${st.node})`));
      }
      rows.push(h('dt', {}, 'Voters alive'), h('dd', {}, `${est.alive} of ${est.voters}`));
      set(autopilotCard, title('ov-autopilot', 'Autopilot'), h('dl', {class: 'kv'}, rows),
        healthy === undefined ? h('p', {class: 'muted'}, gauges instanceof Error && gauges.status === 403
          ? 'Health gauges: not allowed (/metrics needs cluster:read).'
          : `Health is measured by the leader's autopilot${leader ? ` (${leader})` : ''}; this node shows its gossip view.`) : null);

      set(catalogCard, title('ov-catalog', 'Catalog'), h('dl', {class: 'kv'},
        h('dt', {}, 'Services'), h('dd', {id: 'ov-services'}, num(st.services)),
        h('dt', {}, 'Instances'), h('dd', {}, num(st.instances), statusCounts instanceof Error ? null : statusCounts
          ? h('span', {}, ' — ', ['passing', 'warning', 'critical'].map((s) => [badge(`${num(statusCounts[s])} ${s}`, s), ' ']),
            statusCounts.maintenance ? badge(`${num(statusCounts.maintenance)} in maintenance`, 'warning') : null)
          : null),
        h('dt', {}, 'Routes'), h('dd', {}, num(st.routes)),
        h('dt', {}, 'Config keys'), h('dd', {}, num(st.config_entries)),
        h('dt', {}, 'Sessions'), h('dd', {id: 'ov-sessions'}, sessions === null ? '…' : sessions instanceof Error ? h('span', {class: 'muted'}, sessions.status === 403 ? 'not allowed' : sessions.message)
          : h('a', {href: '#/sessions'}, num(sessions)))),
      statusCounts instanceof Error ? h('p', {class: 'muted'}, `Instances by status: ${statusCounts.status === 403 ? 'not allowed' : statusCounts.message}`) : null);
    }

    const stops = [];
    stops.push(live(async (q, signal) => {
      const [status, raft] = await Promise.all([get('/status', {signal}), get('/cluster/raft', {signal})]);
      return {status: status.data, raft: raft.data, index: 0,
        lastContact: Number(status.headers.get('X-Nexus-Last-Contact') || 0),
        knownLeader: status.headers.get('X-Nexus-Known-Leader') === 'true'};
    }, {
      interval: 1000,
      onData: (res) => { cluster = res; renderCluster(); },
      onError: (e) => {
        cluster = null;
        set(leaderCard, title('ov-leader', 'Leader'), problem(e, 'the cluster state'));
        set(autopilotCard, title('ov-autopilot', 'Autopilot'), problem(e, 'the Raft configuration'));
        set(catalogCard, title('ov-catalog', 'Catalog'), problem(e, 'the cluster status'));
        set(members, problem(e, 'the members'));
      },
    }));

    stops.push(live((q, signal) => getAll('/services', {query: q, signal}), {
      onData: ({data}) => {
        const c = {passing: 0, warning: 0, critical: 0, maintenance: 0};
        for (const s of data) {
          for (const i of s.instances) {
            c[i.status in c ? i.status : 'critical']++;
            if (i.maintenance) c.maintenance++;
          }
        }
        statusCounts = c;
        renderCluster();
      },
      onError: (e) => { statusCounts = e; renderCluster(); },
    }));

    stops.push(liveGet('/sessions', {
      all: true,
      onData: ({data}) => { sessions = data.length; renderCluster(); },
      onError: (e) => { sessions = e; renderCluster(); },
    }));

    stops.push(maint.watch({
      onData: ({data}) => { maintenance = data || []; set(memberStatus); renderCluster(); },
      onError: (e) => { maintenance = e; renderCluster(); },
    }));

    stops.push(live((q, signal) => get('/metrics', {signal, text: true}), {
      interval: 2000,
      onData: ({data}) => { gauges = parse(data); renderCluster(); renderAudit(); },
      onError: (e) => { gauges = e; renderCluster(); renderAudit(); },
    }));

    let auditState = null;
    function renderAudit() {
      if (!auditState) return;
      if (auditState instanceof Error) {
        set(auditCard, title('ov-audit', 'Audit archive'), problem(auditState, 'the audit settings'));
        return;
      }
      const a = auditState;
      const lagSeconds = gauges && !(gauges instanceof Error) ? value(gauges, 'nexus_audit_archive_lag_seconds') : undefined;
      set(auditCard, title('ov-audit', 'Audit archive'), h('dl', {class: 'kv'},
        h('dt', {}, 'Archive'), h('dd', {}, a.archiving ? badge('archiving', 'ok') : [badge('off', 'neutral'), ' the backlog is a ring']),
        h('dt', {}, 'Lag'), h('dd', {id: 'ov-lag'}, a.archiving
          ? `${num(a.backlog.records)} records${lagSeconds !== undefined ? `, oldest ${fmtDuration(lagSeconds * 1000)}` : ''}`
          : 'not archiving'),
        h('dt', {}, 'Backlog'), h('dd', {}, `${num(a.backlog.records)} records, ${fmtBytes(a.backlog.bytes)}`),
        h('dt', {}, 'Dropped / evicted'), h('dd', {}, `${num(a.backlog.dropped)} / ${num(a.backlog.evicted)}`)));
    }
    stops.push(liveGet('/audit/settings', {
      onData: ({data}) => { auditState = data; renderAudit(); },
      onError: (e) => { auditState = e; renderAudit(); },
    }));

    return () => stops.forEach((s) => s());
  },
};
