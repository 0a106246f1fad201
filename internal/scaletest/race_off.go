//go:build !race

package scaletest

// Race is true in -race builds.
const Race = false
