package e2e

import (
	"strings"
	"testing"
)

// TestConsole_ACL: with access control on, the console's files load
// without a token, the pages ask for one, a manager creates a policy and a
// token through the forms, and a token without the rights sees "Not
// allowed" instead of an empty page. The token never appears in a URL.
func TestConsole_ACL(t *testing.T) {
	requireChromium(t)
	c := startCluster(t, 1, "--acl-enabled")
	waitLeader(t, c, []int{0})
	api := newClient(t)
	b := newBrowser(t, "http://"+c.HTTPAddr(0))

	var boot struct {
		SecretID string `json:"secret_id"`
	}
	t.Run("login", func(t *testing.T) {
		b.step(t)
		b.load("/ui/")
		// /status needs a token: the login dialog opens, the page says why.
		b.waitVisible("#login-dialog[open]")
		b.waitText("#main", "Log in needed")
		b.screenshot("login")
		b.setValue("#login-token", "not-a-token")
		b.click("#login-form button[type=submit]")
		b.waitText("#login-error", "Not accepted")
		api.must("POST", c.URL(0, "/acl/bootstrap"), nil, &boot)
		b.setValue("#login-token", boot.SecretID)
		b.click("#login-form button[type=submit]")
		b.waitCond("the dialog to close", `!document.getElementById('login-dialog').open`)
		b.waitText("#ov-leader-name", c.Node(0).Name)
		b.waitText("#nav", "Access control")
		b.waitCond("the logout button", `!document.getElementById('logout-button').hidden`)
	})

	var limited struct {
		SecretID string `json:"secret_id"`
	}
	t.Run("a manager creates a policy and a token", func(t *testing.T) {
		b.step(t)
		b.goTo("acl/policies")
		b.waitText("#acl-policies", "global-management")
		b.fill("#f-name", "svc-read", "#f-rules", "service * read\nconfig app/ fly")
		b.fieldError("#acl-policies-form button[type=submit]", "f-rules", "rules[1].access", "acl-policy-error")
		b.setValue("#f-rules", "service * read")
		b.click("#acl-policies-form button[type=submit]")
		b.waitText("#acl-policies", "svc-read", "service * read")
		b.goTo("acl/tokens")
		b.waitVisible("#acl-tokens-form")
		b.fill("#f-description", "read the catalog", "#f-policies", "svc-read")
		b.click("#acl-tokens-form button[type=submit]")
		limited.SecretID = strings.TrimSpace(b.waitText("#new-secret", "-"))
		b.waitText("#acl-tokens", "read the catalog", "svc-read")
		b.checkAccessible("acl tokens")
		b.screenshot("acl-tokens")
	})

	t.Run("a token without the right sees not allowed", func(t *testing.T) {
		b.step(t)
		b.click("#logout-button")
		b.waitCond("logged out", `!document.getElementById('login-button').hidden`)
		b.click("#login-button")
		b.waitVisible("#login-dialog[open]")
		b.setValue("#login-token", limited.SecretID)
		b.click("#login-form button[type=submit]")
		b.waitText("#who", "read the catalog")
		b.goTo("services")
		b.waitCond("the services list", `!!document.querySelector('#services-table') || document.body.innerText.includes('No services are registered')`)
		// Lists show what the token may read (none here); one key is refused.
		b.goTo("config")
		b.waitText("#main", "0 keys that your token may read")
		b.goTo("config/app/db/pool")
		b.waitText("#main", "Not allowed", "app/db/pool")
		b.goTo("overview")
		b.waitText("#main", "Not allowed")
		b.waitCond("no card left loading", `!document.getElementById('main').innerText.includes('Loading')`)
		b.screenshot("not-allowed")
		b.goTo("acl/tokens")
		b.waitText("#main", "Not allowed")
	})

	b.t = t
	b.checkNoExceptions()
	b.checkSameOrigin()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, u := range b.requests {
		for _, secret := range []string{boot.SecretID, limited.SecretID} {
			if secret != "" && strings.Contains(u, secret) {
				t.Errorf("a token went into a URL: %s", u)
			}
		}
	}
}
