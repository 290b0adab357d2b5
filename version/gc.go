package version

import (
	"context"
	"fmt"

	"gitmesh/gitexec"
	"gitmesh/lock"
)

// GC runs `git gc --auto` on this device's copy of repo under the write
// lock and this device's read lock, so that no push and no fetch touches
// the copy meanwhile (pushes elsewhere wait, within their lock_timeout).
// receive-pack and fetches run no gc of their own.
func (n *Node) GC(ctx context.Context, repo string) error {
	st, err := load(ctx, n.DB, repo, "", n.Device)
	if err != nil {
		return err
	}
	if st.SelfID == 0 {
		return fmt.Errorf("%w: %s", ErrNoDevice, n.Device)
	}
	dir := gitexec.RepoDir(n.RepoRoot, repo)
	if !gitexec.Exists(dir) {
		return nil // no copy here yet
	}
	conn, err := n.DB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	for _, k := range []lock.Key{lock.Write(st.RepoID), lock.Read(st.RepoID, st.SelfID)} {
		if err := lock.Acquire(ctx, conn, k, n.LockTimeout, n.waiting(repo, k)); err != nil {
			return err
		}
	}
	if err := n.removeStaleLocks(dir); err != nil {
		return err
	}
	g := n.Git
	g.Timeout = 0 // a repack takes as long as it takes; the operator may stop it
	return g.GCAuto(ctx, dir)
}
