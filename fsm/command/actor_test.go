package command

import "testing"

// Audit admission depends on the actor: a node's own writes pass a full
// backlog.
func TestIsSystemActor(t *testing.T) {
	for _, tc := range []struct {
		actor  string
		system bool
	}{
		{ActorSystem, true},
		{ActorHealth, true},
		{ActorLeader, true},
		{"system:anything", true},
		{"systemd", false},
		{"anonymous", false},
		{"token:abc", false},
		{"", false},
	} {
		if got := IsSystemActor(tc.actor); got != tc.system {
			t.Errorf("IsSystemActor(%q) = %v", tc.actor, got)
		}
	}
}
