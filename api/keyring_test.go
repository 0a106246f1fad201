package api

import (
	"context"
	"errors"
	"testing"
)

type fakeKeyring struct {
	keys    KeyringStatus
	applied []string
	partial bool
	macErr  error
}

type codedErr struct {
	status int
	code   string
}

func (e codedErr) Error() string     { return e.code }
func (e codedErr) StatusCode() int   { return e.status }
func (e codedErr) ErrorCode() string { return e.code }

func (f *fakeKeyring) List() (KeyringStatus, error) { return f.keys, nil }

func (f *fakeKeyring) Apply(_ context.Context, op, key string) (map[string]string, error) {
	if key == "bad" {
		return nil, codedErr{400, "invalid"}
	}
	f.applied = append(f.applied, op+" "+key)
	if f.partial {
		return map[string]string{"n1": "ok", "n2": "error: down"}, errors.New("failed on 1 node(s)")
	}
	return map[string]string{"n1": "ok", "n2": "ok"}, nil
}

func TestKeyringEndpoints(t *testing.T) {
	cases := []struct {
		name         string
		noKeyring    bool
		partial      bool
		method, path string
		body         string
		hdr          []string
		status       int
		code         string
	}{
		{"list", false, false, "GET", "/operator/keyring", "", nil, 200, ""},
		{"install", false, false, "POST", "/operator/keyring", `{"op":"install","key":"a2V5"}`, nil, 200, ""},
		{"partial", false, true, "POST", "/operator/keyring", `{"op":"use","key":"a2V5"}`, nil, 503, "keyring_partial"},
		{"missing op", false, false, "POST", "/operator/keyring", `{"key":"a2V5"}`, nil, 400, "invalid"},
		{"bad op", false, false, "POST", "/operator/keyring", `{"op":"drop","key":"a2V5"}`, nil, 400, "invalid"},
		{"missing key", false, false, "POST", "/operator/keyring", `{"op":"use"}`, nil, 400, "invalid"},
		{"bad key", false, false, "POST", "/operator/keyring", `{"op":"use","key":"bad"}`, nil, 400, "invalid"},
		{"bad json", false, false, "POST", "/operator/keyring", `{`, nil, 400, CodeInvalidJSON},
		{"method", false, false, "DELETE", "/operator/keyring", "", nil, 405, "method_not_allowed"},
		{"no keyring", true, false, "GET", "/operator/keyring", "", nil, 404, "not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kr := &fakeKeyring{keys: KeyringStatus{Primary: "a2V5", Keys: []string{"a2V5"}}, partial: tc.partial}
			h := newHarness(t, func(d *Deps) {
				if !tc.noKeyring {
					d.Keyring = kr
				}
			})
			var body any
			if tc.body != "" {
				body = tc.body
			}
			r := h.do(tc.method, tc.path, body, tc.hdr...)
			if tc.code != "" {
				h.mustErr(r, tc.status, tc.code)
				return
			}
			var out map[string]any
			h.must(r, tc.status, &out)
			if tc.name == "install" && (len(kr.applied) != 1 || out["nodes"] == nil) {
				t.Fatalf("applied %q answer %v", kr.applied, out)
			}
		})
	}
}
