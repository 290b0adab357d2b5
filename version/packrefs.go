package version

import (
	"context"

	"gitmesh/gitexec"
	"gitmesh/lock"
)

// PackLoose is how many loose refs a copy may gather before PackRefs
// packs them. Every push's ref read (for-each-ref) and every staging
// push's advertisement read each loose ref as a file of its own: with
// 10,000 of them a no-op staging push took over a second here, and 0.1 s
// once they were packed. A one-commit push leaves two loose refs (the
// branch and its staged twin), far below this.
const PackLoose = 256

// PackRefs packs this device's copy of repo's refs when it holds at
// least PackLoose loose ones. It runs after a push has been answered
// (in the detached converge, and on a peer asked to sync), under the
// write lock and this device's read lock, as gc does, so that no push
// stages and no catch-up shows refs on the copy meanwhile (pack-refs
// locks each loose ref it prunes: a concurrent update-ref would fail).
// Each wait is bounded by lock_timeout; a push waits for it at most as
// long as packing takes (one rewrite of packed-refs). Ref values do not
// change, so no digest does.
func (n *Node) PackRefs(ctx context.Context, repo string) error {
	dir := gitexec.RepoDir(n.RepoRoot, repo)
	if !gitexec.Exists(dir) || gitexec.LooseRefs(dir, PackLoose) < PackLoose {
		return nil
	}
	st, err := load(ctx, n.DB, repo, "", n.Device)
	if err != nil || st.SelfID == 0 {
		return err
	}
	conn, err := n.DB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, k := range []lock.Key{lock.Write(st.RepoID), lock.Read(st.RepoID, st.SelfID)} {
		if err := lock.Acquire(ctx, conn, k, n.LockTimeout, nil); err != nil {
			return err
		}
		defer n.unlock(conn, repo, k)
	}
	if err := n.removeStaleLocks(dir); err != nil {
		return err
	}
	return n.Git.PackRefs(ctx, dir)
}
