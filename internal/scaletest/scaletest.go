// Package scaletest holds what the tests that measure cost per write share:
// they compare the bytes a write allocates at two catalog sizes, so that
// work proportional to the catalog shows as a ratio (counts, not wall
// time), and shrink the sizes under -race.
package scaletest

import "runtime"

// Allocated returns the bytes the whole process allocated while fn ran
// (other goroutines included: the work a write causes often happens on a
// goroutine of its own).
func Allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// LeastAllocated is the least of rounds measurements of Allocated(fn),
// for an fn that changes nothing (a read): a goroutine of the process
// allocating beside it (a gateway table rebuild, a watcher waking) only
// adds to a measurement, so the least one is fn's own cost.
func LeastAllocated(rounds int, fn func()) uint64 {
	least := Allocated(fn)
	for range rounds - 1 {
		least = min(least, Allocated(fn))
	}
	return least
}

// Sizes returns small and large, or under -race (much slower) small/2 and
// large/5: still 8x apart when large is 20x small.
func Sizes(small, large int) (int, int) {
	if Race {
		return small / 2, large / 5
	}
	return small, large
}
