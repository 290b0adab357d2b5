package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"gitmesh/config"
	"gitmesh/gitexec"
	"gitmesh/public"
	"gitmesh/version"
)

// Any device answers: a request that reaches a device holding no copy of
// its repository is passed on, after the access check there, to one of
// the holders (gitexec.PassOnCommand), which serves it as the user: access
// is checked again and its limits apply. The user's stdin goes to the hop
// directly; its stdout comes back through a pipe that is copied, so that a
// holder that cannot be reached before it said anything is replaced by
// the next; the holder's stderr (gitmesh's sentences, git's) comes back
// as it is. No copy is ever made on a device that is not a holder.

// hopError is a request that could not be passed on, or whose hop broke:
// the database and git were fine, a device was not (exit 6, unavailable).
type hopError struct{ error }

// ExitCode is the documented exit status of an unreachable device.
func (hopError) ExitCode() int { return 6 }

func (e hopError) Unwrap() error { return e.error }

// errMovedMeanwhile refuses a request passed on to a device that is no
// longer a holder (the repository moved meanwhile): never passed on again.
func errMovedMeanwhile(repo, device string) error {
	msg := fmt.Sprintf("device %s no longer holds %s (its copies moved while your request was passed on); try again", name(device), repo)
	return hopError{public.New(msg)}
}

// errHTTPNotHolder refuses a request of a front door that gave no way to
// pass it on (every door does: a guard), on a device that holds no copy:
// no copy is ever made outside the placement. It names the holders.
func errHTTPNotHolder(st version.State) error {
	var names []string
	for _, h := range st.Holders {
		names = append(names, h.Name)
	}
	msg := fmt.Sprintf("this device holds no copy of %s and cannot pass this request on; use a device that holds it (%s)", st.Repo, strings.Join(names, ", "))
	return hopError{public.New(msg)}
}

// passOn serves r on a holder of st's repository. dbh is closed already:
// the hop may last as long as the holder's limits allow.
func passOn(ctx context.Context, s config.Settings, r Request, st version.State, log zerolog.Logger) error {
	protocol := ""
	for _, kv := range gitexec.Env(r.Environ) {
		if v, ok := strings.CutPrefix(kv, "GIT_PROTOCOL="); ok {
			protocol = v
		}
	}
	hopCmd := r.Cmd
	var (
		stdin  io.Reader = os.Stdin
		stdout io.Writer = os.Stdout
		body   *replay
	)
	if r.HTTP != nil {
		hopCmd.HTTP = gitexec.HTTPRPC
		if r.Advertise {
			hopCmd.HTTP = gitexec.HTTPAdvertise
		}
		stdout, stdin = r.HTTP.Out, strings.NewReader("")
		if r.HTTP.Body != nil {
			body = &replay{r: r.HTTP.Body}
		}
	}
	remote, err := gitexec.PassOnCommand(r.User, protocol, hopCmd)
	if err != nil {
		return err
	}
	// A bad cluster key or known_hosts setting is one sentence, not ssh's
	// words (which name the key's path even when told to be quiet).
	var peers []version.Copy
	for _, h := range st.Holders {
		peers = append(peers, version.Copy{DeviceID: h.ID, Device: h.Name, URL: h.URL})
	}
	if err := checkPeerAccess(s, st.Repo, peers); err != nil {
		return public.Wrap(err, fmt.Sprintf("device %s cannot pass requests on to the devices holding %s: its cluster key or known_hosts setting is wrong; tell an administrator",
			name(s.Device), st.Repo))
	}
	var tried []string
	for _, h := range hopOrder(st) {
		if body != nil {
			if stdin = body.again(); stdin == nil {
				break // too much of the body went to a holder that failed
			}
		}
		hlog := log.With().Str("holder", h.Name).Logger()
		cmd, err := hopCommand(s, h, remote, hlog)
		if err != nil {
			tried = append(tried, h.Name+": "+err.Error())
			hlog.Warn().Err(err).Msg("pass on: holder unreachable")
			continue
		}
		start := time.Now()
		spoke, err := runHop(ctx, cmd, stdin, stdout, r.spoke)
		hlog.Info().Dur("duration", time.Since(start)).Bool("spoke", spoke).AnErr("error", err).Msg("passed on")
		if err == nil {
			return nil
		}
		var unreachable *hopUnreachable
		if !spoke && errors.As(err, &unreachable) {
			tried = append(tried, h.Name+": "+err.Error())
			continue
		}
		var exit *gitexec.ExitError
		if errors.As(err, &exit) {
			return err // the holder told the user why, and chose the status
		}
		msg := fmt.Sprintf("device %s lost its connection to the device holding %s before your request finished; try again later "+
			"(a push that was not acknowledged may or may not have landed: fetch to see)", name(s.Device), st.Repo)
		return hopError{public.Wrap(fmt.Errorf("pass %s on to %s: %w", st.Repo, h.Name, err), msg)}
	}
	msg := fmt.Sprintf("no device holding %s could be reached from device %s; try again later", st.Repo, name(s.Device))
	return hopError{public.Wrap(fmt.Errorf("pass %s on: no holder reachable: %s", st.Repo, strings.Join(tried, "; ")), msg)}
}

// hopOrder is the holders to try: those with the newest version, shown
// and not being written, in random order (the load spreads), then the
// others, which catch up themselves first.
func hopOrder(st version.State) []version.Device {
	high := st.Highest()
	current := map[int32]bool{}
	for _, c := range st.Copies {
		if c.Version == high && !c.Pending && !c.IsWriting {
			current[c.DeviceID] = true
		}
	}
	var first, rest []version.Device
	for _, h := range st.Holders {
		if h.ID == st.SelfID {
			continue
		}
		if current[h.ID] {
			first = append(first, h)
		} else {
			rest = append(rest, h)
		}
	}
	rand.Shuffle(len(first), func(i, j int) { first[i], first[j] = first[j], first[i] })
	rand.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	return append(first, rest...)
}

// hopUnreachable is a hop that never reached the holder's gitmesh.
type hopUnreachable struct{ why string }

func (e *hopUnreachable) Error() string { return e.why }

// hopCommand is the process that serves remote on holder h: ssh with the
// cluster key for an ssh:// device; for a device on a local path (tests),
// gitmesh itself as that device, with the same cluster command.
func hopCommand(s config.Settings, h version.Device, remote string, log zerolog.Logger) (*exec.Cmd, error) {
	if strings.Contains(h.URL, "://") {
		cmd, err := Git(s, log).PassOnSSH(h.URL, remote)
		if err != nil {
			return nil, &hopUnreachable{err.Error()}
		}
		cmd.Env = gitexec.Env(os.Environ())
		return cmd, nil
	}
	if err := gitexec.CheckRoot(h.URL); err != nil {
		return nil, &hopUnreachable{err.Error()} // the device's disk is away
	}
	bin, err := os.Executable()
	if err != nil {
		return nil, &hopUnreachable{err.Error()}
	}
	cmd := exec.Command(bin, "serve", "--cluster")
	cmd.Env = append(append(gitexec.Env(os.Environ()), SettingsEnv(s)...), limitsEnv(s)...)
	cmd.Env = append(cmd.Env, "GITMESH_DEVICE="+h.Name, "GITMESH_REPO_ROOT="+h.URL, "SSH_ORIGINAL_COMMAND="+remote)
	return cmd, nil
}

// limitsEnv passes the limits a holder applies to a child gitmesh.
func limitsEnv(s config.Settings) []string {
	return []string{
		"GITMESH_MAX_USER_SESSIONS=" + strconv.Itoa(s.MaxUserSessions), "GITMESH_MAX_PUSH_WAITERS=" + strconv.Itoa(s.MaxPushWaiters),
		"GITMESH_PUSH_TIMEOUT=" + s.PushTimeout.D().String(), "GITMESH_PUSH_IDLE_TIMEOUT=" + s.PushIdleTimeout.D().String(),
		"GITMESH_MAX_PUSH_BYTES=" + strconv.FormatInt(s.MaxPushBytes, 10), "GITMESH_MAX_PUSH_REFS=" + strconv.Itoa(s.MaxPushRefs),
	}
}

// replay is a request body that can be given to the next holder when
// one failed: what the failed hop took is kept, up to maxReplay bytes.
type replay struct {
	r    io.Reader
	kept []byte
	over bool
}

// maxReplay bounds the body kept for another try.
const maxReplay = 1 << 20

func (b *replay) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if !b.over {
		if len(b.kept)+n > maxReplay {
			b.over, b.kept = true, nil
		} else {
			b.kept = append(b.kept, p[:n]...)
		}
	}
	return n, err
}

// again is the whole body for one more hop, or nil when too much of it
// is gone.
func (b *replay) again() io.Reader {
	if b.over {
		return nil
	}
	return io.MultiReader(bytes.NewReader(b.kept), b)
}

// runHop runs cmd reading stdin (the user's, for SSH) with this process's
// stderr, copying its stdout to stdout. It reports whether any byte came
// back (then the user's git has begun to read the holder, and spoke is
// set). The hop and whatever it starts get SIGKILL if this process dies
// or ctx ends.
func runHop(ctx context.Context, cmd *exec.Cmd, stdin io.Reader, stdout io.Writer, spoke *bool) (bool, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return false, err
	}
	defer pr.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, pw, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	done, err := gitexec.StartTied(cmd)
	pw.Close()
	if err != nil {
		return false, &hopUnreachable{err.Error()}
	}
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-ctx.Done():
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case <-finished:
		}
	}()
	said := false
	copyErr := copyOut(pr, stdout, &said, spoke)
	if copyErr != nil {
		// The user hung up: the holder sees its client go too.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	err = <-done
	var ee *exec.ExitError
	switch {
	case copyErr != nil:
		return said, copyErr
	case err == nil:
		return said, nil
	case errors.As(err, &ee) && ee.ExitCode() == gitexec.SSHUnreachable:
		return said, &hopUnreachable{"ssh could not reach the device"}
	case errors.As(err, &ee) && ee.ExitCode() > 0:
		return said, &gitexec.ExitError{Code: ee.ExitCode()}
	}
	return said, fmt.Errorf("the hop was stopped (%v)", err)
}

// copyOut copies the hop's stdout to this process's until the hop closes
// it, marking the first byte.
func copyOut(r io.Reader, w io.Writer, wrote, spoke *bool) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			*wrote = true
			if spoke != nil {
				*spoke = true
			}
			if _, werr := w.Write(buf[:n]); werr != nil {
				return fmt.Errorf("write to the client: %w", werr)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
