package main

import (
	"context"
	"sync"
	"time"
)

// runWhileLeader runs duty while isLeader reports true (polled every
// 250ms, as the autopilot does: raft's LeaderCh has one consumer): duty's
// context ends when leadership is lost, and a new leadership starts it
// again. stop ends it for good and waits for duty to return.
//
// This is the session duty's wiring until the agent has one leadership
// loop that takes a list of duties (architecture.md, issue 15).
func runWhileLeader(isLeader func() bool, duty func(ctx context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		var stopDuty context.CancelFunc
		done := make(chan struct{})
		end := func() {
			if stopDuty != nil {
				stopDuty()
				<-done
				stopDuty = nil
			}
		}
		defer end()
		for {
			switch leading := isLeader(); {
			case leading && stopDuty == nil:
				dctx, c := context.WithCancel(ctx)
				stopDuty = c
				done = make(chan struct{})
				go func(done chan struct{}) { defer close(done); duty(dctx) }(done)
			case !leading:
				end()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { cancel(); wg.Wait() }) }
}
