package registry

import (
	"github.com/hashicorp/go-memdb"
)

const (
	tableCounts = "counts"
	countsKey   = "catalog"
)

// catalogCounts are the sizes of the catalog, kept up to date by every
// write transaction from the changes it made, so that /metrics, /status
// and the health gauges read them in O(1) instead of walking the catalog
// (100,000 instances or 1,000,000 config keys on every scrape). They are
// derived state: not in snapshots, recounted on restore.
type catalogCounts struct {
	Key       string
	Services  int64
	Instances int64
	Config    int64
	Routes    int64
	// ByStatus counts instances by health status (passing, warning,
	// critical; anything else counts as critical, as the API ranks it).
	Passing, Warning, Critical int64
	// Maintenance counts instances in maintenance (also counted critical).
	Maintenance int64
}

func countsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableCounts, Indexes: map[string]*memdb.IndexSchema{
		"id": {Name: "id", Unique: true, Indexer: byString(func(c *catalogCounts) string { return c.Key })},
	}}
}

func (tx *Tx) counts() catalogCounts {
	raw, err := tx.txn.First(tableCounts, "id", countsKey)
	if err != nil || raw == nil {
		return catalogCounts{Key: countsKey}
	}
	return *raw.(*catalogCounts)
}

func (c *catalogCounts) addStatus(status string, d int64) {
	switch status {
	case StatusPassing:
		c.Passing += d
	case StatusWarning:
		c.Warning += d
	default:
		c.Critical += d
	}
}

func (c *catalogCounts) addInstance(in *Instance, d int64) {
	c.addStatus(in.Status, d)
	if in.Maintenance != nil {
		c.Maintenance += d
	}
}

// applyCounts moves the counts by what changes did; it writes the row only
// when a counted table changed.
func (tx *Tx) applyCounts(changes memdb.Changes) error {
	var c *catalogCounts
	load := func() *catalogCounts {
		if c == nil {
			cur := tx.counts()
			c = &cur
		}
		return c
	}
	for _, ch := range changes {
		d := int64(0)
		switch {
		case ch.Before == nil && ch.After != nil:
			d = 1
		case ch.Before != nil && ch.After == nil:
			d = -1
		}
		switch ch.Table {
		case tableServices:
			load().Services += d
		case tableInstances:
			cc := load()
			cc.Instances += d
			if b, ok := ch.Before.(*Instance); ok {
				cc.addInstance(b, -1)
			}
			if a, ok := ch.After.(*Instance); ok {
				cc.addInstance(a, 1)
			}
		case tableConfig:
			load().Config += d
		case tableRoutes:
			load().Routes += d
		}
	}
	if c == nil {
		return nil
	}
	return tx.txn.Insert(tableCounts, c)
}

// recount counts every counted table (after a restore).
func (tx *Tx) recount() error {
	c := catalogCounts{Key: countsKey}
	count := func(table string, each func(any)) int64 {
		it, err := tx.txn.Get(table, "id")
		if err != nil {
			return 0
		}
		n := int64(0)
		for raw := it.Next(); raw != nil; raw = it.Next() {
			n++
			if each != nil {
				each(raw)
			}
		}
		return n
	}
	c.Services = count(tableServices, nil)
	c.Instances = count(tableInstances, func(raw any) { c.addInstance(raw.(*Instance), 1) })
	c.Config = count(tableConfig, nil)
	c.Routes = count(tableRoutes, nil)
	return tx.txn.Insert(tableCounts, &c)
}

// Counts returns the number of services, instances, config entries and
// routes, in O(1).
func (tx *Tx) Counts() (services, instances, config, routes int) {
	c := tx.counts()
	return int(c.Services), int(c.Instances), int(c.Config), int(c.Routes)
}

// Objects returns how many objects a snapshot of the state encodes, as
// far as they are counted in O(1): services, instances, config entries,
// routes and audit records (sessions, ACLs and the rest are few).
func (tx *Tx) Objects() uint64 {
	c := tx.counts()
	n := c.Services + c.Instances + c.Config + c.Routes + max(tx.AuditState(nil).Records, 0)
	return uint64(max(n, 0))
}

// StatusCounts returns the number of instances passing, warning and
// critical, in O(1).
func (tx *Tx) StatusCounts() (passing, warning, critical int) {
	c := tx.counts()
	return int(c.Passing), int(c.Warning), int(c.Critical)
}

// MaintenanceCount returns the number of instances in maintenance, in O(1).
func (tx *Tx) MaintenanceCount() int { return int(tx.counts().Maintenance) }
