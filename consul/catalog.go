package consul

import (
	"sort"

	"github.com/hashicorp/go-memdb"

	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/registry"
)

const tableServices = "services"

// tags are the repeated ?tag= of a request (all must match).
func (r *request) tags() []string {
	var tags []string
	for _, t := range r.ctx.QueryArgs().PeekMulti("tag") {
		tags = append(tags, string(t))
	}
	return tags
}

// serviceRead runs fn on the instances of the named service for a
// blocking read: the index is the service's (it moves on every change of
// its instances, deletions included), or the catalog's when the service
// does not exist. Watching only the service's record wakes only its
// watchers on a change.
func (r *request) serviceRead(name string, fn func(tx *registry.Tx, insts []registry.Instance)) bool {
	if !r.check(registry.ACLResourceService, name, acl.Read) {
		return false
	}
	return r.read(func(tx *registry.Tx, ws memdb.WatchSet) uint64 {
		svc := tx.Service(ws, name)
		if svc == nil {
			fn(tx, nil)
			return tx.TableIndex(ws, tableServices)
		}
		fn(tx, tx.ServiceInstances(nil, name))
		return svc.ModifyIndex
	})
}

// GET /v1/catalog/services: {"name":[tags...]}.
func (s *Server) catalogServices(r *request) {
	if !r.checkList(registry.ACLResourceService) {
		return
	}
	var out map[string][]string
	ok := r.read(func(tx *registry.Tx, ws memdb.WatchSet) uint64 {
		out = map[string][]string{}
		for _, svc := range tx.Services(nil) {
			if r.canRead(registry.ACLResourceService, svc.Name) {
				out[svc.Name] = registry.ServiceTags(tx.ServiceInstances(nil, svc.Name))
			}
		}
		return tx.TableIndex(ws, tableServices)
	})
	if ok {
		r.json(out)
	}
}

// GET /v1/catalog/service/:name?tag=: the instances, an unknown service []
// (200, as Consul).
func (s *Server) catalogService(r *request) {
	tags := r.tags()
	var out []catalogService
	ok := r.serviceRead(r.param, func(_ *registry.Tx, insts []registry.Instance) {
		n := s.nodes()
		out = make([]catalogService, 0, len(insts))
		for i := range insts {
			if insts[i].HasTags(tags) {
				out = append(out, toCatalogService(n, &insts[i]))
			}
		}
	})
	if ok {
		r.json(out)
	}
}

// GET /v1/catalog/nodes: the cluster's members and every node that owns an
// instance, sorted by name. The index is the catalog's: a membership
// change alone does not move it.
func (s *Server) catalogNodes(r *request) {
	if !r.check(registry.ACLResourceCluster, "", acl.Read) {
		return
	}
	var out []node
	ok := r.read(func(tx *registry.Tx, ws memdb.WatchSet) uint64 {
		n := s.nodes()
		names := map[string]bool{}
		for name := range n.members {
			names[name] = true
		}
		for _, svc := range tx.Services(nil) {
			for _, in := range tx.ServiceInstances(nil, svc.Name) {
				names[in.Node] = true
			}
		}
		out = make([]node, 0, len(names))
		for name := range names {
			out = append(out, n.node(name))
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
		return tx.TableIndex(ws, tableServices)
	})
	if ok {
		r.json(out)
	}
}

// GET /v1/catalog/datacenters: this cluster's datacenter.
func (s *Server) catalogDatacenters(r *request) {
	r.json([]string{s.dc})
}
