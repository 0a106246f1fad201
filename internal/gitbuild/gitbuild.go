// Package gitbuild builds the nexus binary of an earlier commit of this
// repository: the rolling-upgrade test's previous release and the A/B
// benchmarks' baseline. The tree is exported with `git archive` (read
// only: no worktree is left behind if the caller dies) and built with the
// module cache.
package gitbuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrUnavailable wraps why a commit cannot be built here (no git, not a
// checkout, a shallow clone without the commit): callers may skip.
var ErrUnavailable = errors.New("gitbuild: unavailable")

// Root returns the top of the git checkout that holds dir ("" = the
// working directory).
func Root(ctx context.Context, dir string) (string, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return "", fmt.Errorf("%w: git is not installed", ErrUnavailable)
	}
	cmd := exec.CommandContext(ctx, "git", "rev-parse", "--show-toplevel")
	cmd.Dir = dir
	top, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: not in a git checkout (%v)", ErrUnavailable, err)
	}
	return strings.TrimSpace(string(top)), nil
}

// Resolve returns the full commit id of ref in the checkout at root.
func Resolve(ctx context.Context, root, ref string) (string, error) {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--verify", "--quiet", ref+"^{commit}").Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s is not a commit of this history (shallow clone?)", ErrUnavailable, ref)
	}
	return strings.TrimSpace(string(out)), nil
}

// Nexus builds ./cmd/nexus at ref into dir (dir/src holds the tree) and
// returns the binary's path. version is set as main.version.
func Nexus(ctx context.Context, root, ref, dir, version string) (string, error) {
	if _, err := Resolve(ctx, root, ref); err != nil {
		return "", err
	}
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	archive := exec.CommandContext(ctx, "git", "-C", root, "archive", ref)
	untar := exec.CommandContext(ctx, "tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return "", err
	}
	untar.Stdin = pipe
	// One buffer each: exec copies each command's stderr in a goroutine of
	// its own.
	var archiveErr, untarErr bytes.Buffer
	archive.Stderr, untar.Stderr = &archiveErr, &untarErr
	if err := untar.Start(); err != nil {
		return "", err
	}
	if err := archive.Run(); err != nil {
		_ = untar.Wait()
		return "", fmt.Errorf("git archive %s: %v %s", ref, err, archiveErr.String())
	}
	if err := untar.Wait(); err != nil {
		return "", fmt.Errorf("tar: %v %s", err, untarErr.String())
	}
	bin := filepath.Join(dir, "nexus-"+strings.NewReplacer("/", "_", "^", "_", "~", "_").Replace(ref))
	build := exec.CommandContext(ctx, "go", "build", "-ldflags", "-X main.version="+version, "-o", bin, "./cmd/nexus")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", ref, err, out)
	}
	return bin, nil
}
