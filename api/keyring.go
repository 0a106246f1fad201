package api

import (
	"context"
	"time"

	"github.com/valyala/fasthttp"
)

// Gossip keyring rotation (docs/security.md):
//
//	GET  /operator/keyring                      → {"primary","keys"} of this node
//	POST /operator/keyring {"op","key"}         → applies on every alive member:
//	     200 {"op","nodes":{"n1":"ok",...}}; when some node failed 503
//	     {"error":{"code":"keyring_partial",...},"op","nodes"} (the operation
//	     is idempotent: retry)
//
// The node-to-node part (POST /internal/keyring, signed with the cluster
// secret) is peerproto's. This path is served before the routing table
// (keyringRoute).

// KeyringStatus lists a node's gossip keys (base64); Primary encrypts.
type KeyringStatus struct {
	Primary string   `json:"primary"`
	Keys    []string `json:"keys"`
}

// Keyring manages the gossip keyring of the cluster; the cluster package
// implements it (the agent adapts). Errors that know their answer implement
// StatusCode()/ErrorCode().
type Keyring interface {
	List() (KeyringStatus, error)
	// Apply runs op ("install", "use", "remove") with key on every alive
	// member and returns each node's outcome; err is set when one failed.
	Apply(ctx context.Context, op, key string) (map[string]string, error)
}

const (
	pathOperatorKeyring = "/operator/keyring"
	keyringTimeout      = 15 * time.Second
)

type keyringRequest struct {
	Op  *string `json:"op"`
	Key *string `json:"key"`
}

type keyringAnswer struct {
	Error *errorDetail      `json:"error,omitempty"` // 503 keyring_partial
	Op    string            `json:"op"`
	Nodes map[string]string `json:"nodes"`
}

// keyringRoute serves the keyring paths and reports whether it did.
func (s *Server) keyringRoute(ctx *fasthttp.RequestCtx, rc *reqCtx) bool {
	path := string(ctx.Path())
	if path != pathOperatorKeyring {
		return false
	}
	rc.route = path
	allow := "GET, POST"
	method := string(ctx.Method())
	if method != fasthttp.MethodPost && method != fasthttp.MethodGet {
		ctx.Response.Header.Set("Allow", allow)
		writeError(ctx, &apiError{status: fasthttp.StatusMethodNotAllowed, code: "method_not_allowed",
			message: "method " + method + " is not allowed on " + path + "; allowed: " + allow})
		return true
	}
	rc.isWrite = method == fasthttp.MethodPost
	if e := s.authorizeRequest(ctx, rc, &s.eps.keyring); e != nil {
		writeError(ctx, e)
		return true
	}
	if s.keyring == nil {
		writeError(ctx, &apiError{status: fasthttp.StatusNotFound, code: "not_found", message: "the gossip keyring is not available on this node"})
		return true
	}
	if rc.isWrite && len(ctx.PostBody()) > s.maxBody {
		writeError(ctx, errBodyTooLarge(s.maxBody))
		return true
	}
	switch {
	case method == fasthttp.MethodGet:
		st, err := s.keyring.List()
		if err != nil {
			writeError(ctx, keyringErr(err))
			return true
		}
		writeJSON(ctx, fasthttp.StatusOK, st)
	default:
		var req keyringRequest
		if e := decodeJSON(ctx.PostBody(), &req); e != nil {
			writeError(ctx, e)
			return true
		}
		if req.Op == nil {
			writeError(ctx, errInvalid("op", "required: install, use or remove"))
			return true
		}
		switch *req.Op {
		case "install", "use", "remove":
		default:
			writeError(ctx, errInvalid("op", "%q must be install, use or remove", *req.Op))
			return true
		}
		if req.Key == nil || *req.Key == "" {
			writeError(ctx, errInvalid("key", "required: a base64 key of 16, 24 or 32 bytes"))
			return true
		}
		kctx, cancel := context.WithTimeout(context.Background(), keyringTimeout)
		nodes, err := s.keyring.Apply(kctx, *req.Op, *req.Key)
		cancel()
		if err != nil && nodes == nil {
			writeError(ctx, keyringErr(err))
			return true
		}
		ans := keyringAnswer{Op: *req.Op, Nodes: nodes}
		if err != nil {
			ans.Error = &errorDetail{Code: "keyring_partial", Message: err.Error()}
			ctx.Response.Header.Set("Retry-After", "1")
			writeJSON(ctx, fasthttp.StatusServiceUnavailable, ans)
			return true
		}
		writeJSON(ctx, fasthttp.StatusOK, ans)
	}
	return true
}

// keyringErr is the answer to a failed keyring operation (errorOf); an
// error without a code is 503 keyring_unavailable.
func keyringErr(err error) *apiError {
	if e, ok := errorOf("the keyring operation", err); ok {
		return e
	}
	return &apiError{status: fasthttp.StatusServiceUnavailable, code: CodeKeyringUnavailable, message: err.Error(), retryAfter: true}
}
