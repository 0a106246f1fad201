// Package e2e holds end-to-end tests that run real `nexus agent` processes
// (built once by TestMain) through internal/proccluster.
//
// `go test -short` skips them. Environment:
//
//	NEXUS_E2E_BINARY       use this nexus binary instead of building one
//	NEXUS_E2E_BASE_IP      node IP prefix (default "127.0.0."; nodes are .11, .12, ...)
//	NEXUS_E2E_RAFT_PORT    default 18300
//	NEXUS_E2E_GOSSIP_PORT  default 18301
//	NEXUS_E2E_HTTP_PORT    default 18500
//	NEXUS_E2E_GATEWAY_PORT default 18080
//	NEXUS_E2E_LOGS         if set, print the nodes' logs even when a test passes
//
// The ports differ from the agent's defaults so that a development cluster
// (`make cluster`) can run at the same time.
package e2e
