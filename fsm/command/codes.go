package command

// Error codes that are not a command's business answer but cross from the
// cluster and the health duties to the admin API. Errors carry a code
// only; the API maps every code to its HTTP status in one table
// (api/respond.go, statusOfCode).
const (
	// CodeMemberAlive: remove-peer of a server gossip sees alive.
	CodeMemberAlive = "member_alive"
	// CodeInvalidSnapshot: bytes that are not a snapshot this build restores.
	CodeInvalidSnapshot = "invalid_snapshot"
	// CodeKeyringOff: gossip encryption is off, there is no keyring.
	CodeKeyringOff = "keyring_off"
	// CodeOwnerUnavailable: the node owning an instance cannot be reached.
	CodeOwnerUnavailable = "owner_unavailable"
)
