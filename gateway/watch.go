package gateway

import (
	"context"

	"github.com/hashicorp/go-memdb"
)

// watch rebuilds the table each time a watched part of the store changes.
// No polling: it blocks on the store's watch channels. Bursts of changes
// coalesce, since each rebuild reads the latest state.
func (g *Gateway) watch(ctx context.Context, ws memdb.WatchSet) {
	for {
		if err := ws.WatchCtx(ctx); err != nil {
			return // ctx ended
		}
		ws = g.rebuild()
	}
}
