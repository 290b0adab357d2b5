package admin

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"gitmesh/gitexec"
	"gitmesh/termsafe"
	"gitmesh/version"
)

// Verifier reads copies for Verify, at most Jobs at once across every
// repository it is given: a copy on a local-path device from its
// directory (one git for-each-ref, as a write reads it); the copies on an
// ssh:// device with one digests request for many repositories
// (Prefetch), over the shared connection (gitexec.SharedSSHCommand), or
// else with git ls-remote. Devices is read once, for every repository.
type Verifier struct {
	DB      *sql.DB
	Git     gitexec.Git
	Devices []Device
	Jobs    int

	once  sync.Once
	slots chan struct{}
	mu    sync.Mutex
	// digests is what Prefetch read: device -> repository -> digests.
	digests map[string]map[string]gitexec.CopyDigest
}

// Prefetch reads the copies of repos on every ssh:// device with one
// digests request per device (gitexec.PeerDigests; the devices at once),
// so that Verify finds them read. An old device that does not know the
// request gets ErrDigestsUnsupported for every copy, named by Verify.
func (v *Verifier) Prefetch(ctx context.Context, repos []string) {
	var wg sync.WaitGroup
	for _, dev := range v.Devices {
		if !strings.Contains(dev.URL, "://") {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := v.Git.PeerDigests(ctx, dev.URL, repos)
			if err != nil {
				got = make(map[string]gitexec.CopyDigest, len(repos))
				for _, r := range repos {
					got[r] = gitexec.CopyDigest{Err: err}
				}
			}
			v.mu.Lock()
			defer v.mu.Unlock()
			if v.digests == nil {
				v.digests = map[string]map[string]gitexec.CopyDigest{}
			}
			v.digests[dev.Name] = got
		}()
	}
	wg.Wait()
}

// prefetched is what Prefetch read of repo's copy on dev, if it did.
func (v *Verifier) prefetched(dev Device, repo string) (copyRefs, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	d, ok := v.digests[dev.Name][repo]
	if !ok {
		return copyRefs{}, false
	}
	return copyRefs{device: dev.Name, err: d.Err, digest: d.Visible, staged: d.Staged}, true
}

// read reads repo's copy on dev, holding one of the Jobs slots, unless
// Prefetch read it already.
func (v *Verifier) read(ctx context.Context, dev Device, repo string) copyRefs {
	if c, ok := v.prefetched(dev, repo); ok {
		return c
	}
	return v.readNow(ctx, dev, repo)
}

// readNow reads repo's copy on dev, holding one of the Jobs slots.
func (v *Verifier) readNow(ctx context.Context, dev Device, repo string) copyRefs {
	v.once.Do(func() { v.slots = make(chan struct{}, max(v.Jobs, 1)) })
	select {
	case v.slots <- struct{}{}:
	case <-ctx.Done():
		return copyRefs{device: dev.Name, err: ctx.Err()}
	}
	defer func() { <-v.slots }()
	if strings.Contains(dev.URL, "://") {
		return Thaw{Git: v.Git}.read(ctx, dev, repo)
	}
	visible, staged, head, err := v.Git.CopyRefSets(ctx, version.PeerURL(dev.URL, repo))
	c := copyRefs{device: dev.Name, err: err, refs: visible}
	if err == nil {
		c.digest, c.staged = visible.Digest(head), staged.Digest(head)
	}
	return c
}

// Verify reads every holder's recorded copy of repo from its device and
// reports, on out, each copy whose refs differ from the digest recorded
// with its version, and each copy at the newest version that differs from
// another one there. A device that is no holder is not read; a holder
// with no version recorded yet (placed, not caught up) is named, but is
// no problem: there is nothing to compare. It returns how many problems
// it found. The copies are read at once (within the Jobs bound).
func (v *Verifier) Verify(ctx context.Context, repo string, out io.Writer) (int, error) {
	st, err := version.Load(ctx, v.DB, repo)
	if errors.Is(err, version.ErrNotFound) {
		return 0, &UnknownRepoError{Repo: repo}
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", repo, err)
	}
	reads := make([]copyRefs, len(st.Copies))
	var wg sync.WaitGroup
	for i, c := range st.Copies {
		dev, _ := findDevice(v.Devices, c.Device)
		wg.Add(1)
		go func() {
			defer wg.Done()
			reads[i] = v.read(ctx, dev, repo)
			// A prefetched copy was read before its record was loaded: a
			// push in between would look like a difference. Such a copy
			// is read again, after the load, as every copy used to be.
			if _, early := v.prefetched(dev, repo); early && !c.IsWriting && differs(c, reads[i]) {
				reads[i] = v.readNow(ctx, dev, repo)
			}
		}()
	}
	wg.Wait()
	problems := 0
	newest := map[string]string{} // device -> digest read, at the newest version
	for i, c := range st.Copies {
		read := reads[i]
		switch {
		case read.err != nil:
			fmt.Fprintf(out, "%s on %s: cannot read the copy: %s\n", repo, c.Device, termsafe.Escape(read.err.Error()))
			problems++
			continue
		case c.IsWriting:
			fmt.Fprintf(out, "%s on %s: a write is in progress, or never finished (frozen); see 'gitmesh status'\n", repo, c.Device)
			problems++
		case c.Pending && read.staged != c.Digest:
			fmt.Fprintf(out, "%s on %s: staged refs differ from those recorded with version %d\n", repo, c.Device, c.Version)
			problems++
		case c.Pending:
			read.digest = read.staged // what its next read shows
		case read.digest != c.Digest:
			fmt.Fprintf(out, "%s on %s: refs differ from those recorded with version %d\n", repo, c.Device, c.Version)
			problems++
		}
		if c.Version == st.Highest() {
			newest[c.Device] = read.digest
		}
	}
	for _, h := range st.Holders {
		if !recorded(st.Copies, h.ID) {
			fmt.Fprintf(out, "%s on %s: no version recorded yet (placed, not caught up); nothing to compare\n", repo, h.Name)
		}
	}
	var first, firstDigest string
	for dev, dg := range newest {
		if first == "" || dev < first {
			first, firstDigest = dev, dg
		}
	}
	for dev, dg := range newest {
		if dg != firstDigest {
			fmt.Fprintf(out, "%s: the copies on %s and %s are both at version %d but differ\n", repo, first, dev, st.Highest())
			problems++
		}
	}
	if problems == 0 {
		fmt.Fprintf(out, "%s: %d copies match their recorded versions\n", repo, len(st.Copies))
	}
	return problems, nil
}

// differs reports whether a copy read (without error) differs from its
// record.
func differs(c version.Copy, read copyRefs) bool {
	if read.err != nil {
		return false
	}
	if c.Pending {
		return read.staged != c.Digest
	}
	return read.digest != c.Digest
}

// recorded reports whether copies hold a recorded version of device id.
func recorded(copies []version.Copy, id int32) bool {
	for _, c := range copies {
		if c.DeviceID == id {
			return true
		}
	}
	return false
}
