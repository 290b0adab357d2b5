package hook

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// gitEnv is a git environment that reads no user or system config.
func gitEnv(t *testing.T, extra ...string) []string {
	return cleanEnv(append([]string{
		"HOME=" + t.TempDir(),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
		"GIT_TERMINAL_PROMPT=0",
	}, extra...)...)
}

// git runs git in dir and returns its trimmed output, failing the test on error.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := gitRun(t, dir, nil, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

func gitRun(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(t, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// revParse is the value of ref in dir, "" when it does not exist.
func revParse(t *testing.T, dir, ref string) string {
	t.Helper()
	out, err := gitRun(t, dir, nil, "rev-parse", "--verify", "--quiet", ref)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// applier is serve's side of a push in these tests: it reads the push,
// then updates each ref itself and answers ok, or refuses them all.
type applier struct {
	repo   string
	refuse string // the ng reason for every ref; "" to apply
	mute   bool   // read the push and hang up without answering
	note   string // a line for the client, sent after the answer

	raw  bytes.Buffer // what receive-pack sent
	push Push
	err  error
}

func (a *applier) handle(c *Conn) {
	a.push, a.err = ReadPush(bufio.NewReader(io.TeeReader(c, &a.raw)), c)
	if a.err != nil || a.mute {
		return
	}
	var results []Result
	for _, cmd := range a.push.Commands {
		if a.refuse != "" {
			results = append(results, Result{Ref: cmd.Ref, Err: a.refuse})
			continue
		}
		args := []string{"update-ref", cmd.Ref, cmd.New, cmd.Old}
		if cmd.New == zero {
			args = []string{"update-ref", "-d", cmd.Ref, cmd.Old}
		}
		r := Result{Ref: cmd.Ref}
		if out, err := exec.Command("git", append([]string{"-C", a.repo}, args...)...).CombinedOutput(); err != nil {
			r.Err = "update-ref: " + string(out)
		}
		results = append(results, r)
	}
	a.err = WriteResults(c, results)
	if a.err == nil && a.note != "" {
		_, a.err = io.WriteString(c.Notes(), a.note+"\n")
	}
}

// TestPush runs real pushes through receive-pack, the hook directory, the
// test binary as the relay (see TestMain), and a Server.
func TestPush(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is not installed; scripts/setup.sh installs it")
	}
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	hooks := makeDir(t, t.TempDir(), bin)
	receivePack := "git"
	for _, c := range GitConfig(hooks) {
		receivePack += " -c " + shQuote(c)
	}

	tests := []struct {
		name    string
		app     applier
		listen  bool     // serve waits on the socket
		server  []string // more receive-pack settings
		pushArg []string // after "git push REMOTE"
		ownPre  string   // the repository's own pre-receive hook, if any
		caps    string   // receive-pack's version line, as serve read it

		ok       bool              // the push succeeds
		say      []string          // the client's output holds these
		once     string            // the client's output holds this exactly once
		refs     map[string]string // after the push; "A" and "B" are commits, "" absent
		want     *Push             // what serve read; nil when it was not asked
		postSeen bool              // the repository's post-receive ran
	}{
		{
			name: "accepted", listen: true,
			pushArg: []string{"main"},
			caps:    "version=1\n",
			ok:      true,
			say:     []string{"A..B  main -> main"},
			refs:    map[string]string{"refs/heads/main": "B"},
			want:    &Push{Commands: []Command{{"A", "B", "refs/heads/main"}}}, postSeen: true,
		},
		{
			name: "atomic: a new branch and a deletion", listen: true,
			pushArg: []string{"--atomic", "main:refs/heads/topic", ":refs/heads/old"},
			caps:    "version=1\x00atomic\n",
			ok:      true,
			refs:    map[string]string{"refs/heads/main": "A", "refs/heads/topic": "B", "refs/heads/old": ""},
			want: &Push{Atomic: true, Commands: []Command{
				{"A", zero, "refs/heads/old"}, {zero, "B", "refs/heads/topic"},
			}}, postSeen: true,
		},
		{
			name: "push options are not asked for", listen: true,
			server:  []string{"receive.advertisePushOptions=true"},
			pushArg: []string{"--push-option=ci.skip", "main"},
			caps:    "version=1\x00push-options\n",
			ok:      true,
			refs:    map[string]string{"refs/heads/main": "B"},
			want:    &Push{Commands: []Command{{"A", "B", "refs/heads/main"}}}, postSeen: true,
		},
		{
			// The note travels as the hook's stderr: receive-pack sends it
			// as sideband progress, so every client shows it, and git
			// shows it once.
			name: "a note after the answer reaches the client once", listen: true,
			app:     applier{note: "gitmesh: stored on 2 of 3 devices (a, b) as version 7; c follows"},
			pushArg: []string{"main"},
			ok:      true,
			say:     []string{"remote: gitmesh: stored on 2 of 3 devices (a, b) as version 7; c follows", "A..B  main -> main"},
			once:    "stored on 2 of 3 devices",
			refs:    map[string]string{"refs/heads/main": "B"},
			want:    &Push{Commands: []Command{{"A", "B", "refs/heads/main"}}}, postSeen: true,
		},
		{
			name: "refused", listen: true, app: applier{refuse: "no"},
			pushArg: []string{"main"},
			say:     []string{"[remote rejected] main -> main (no)"},
			refs:    map[string]string{"refs/heads/main": "A"},
			want:    &Push{Commands: []Command{{"A", "B", "refs/heads/main"}}},
		},
		{
			name: "refused with a reason on several lines", listen: true,
			app:     applier{refuse: "only 1 of 3 devices could store the push\n(2 needed)"},
			pushArg: []string{"main"},
			say:     []string{"[remote rejected] main -> main (only 1 of 3 devices could store the push (2 needed))"},
			refs:    map[string]string{"refs/heads/main": "A"},
			want:    &Push{Commands: []Command{{"A", "B", "refs/heads/main"}}},
		},
		{
			name: "serve hangs up without answering", listen: true, app: applier{mute: true},
			pushArg: []string{"main"},
			say:     []string{"[remote rejected] main -> main"},
			refs:    map[string]string{"refs/heads/main": "A"},
			want:    &Push{Commands: []Command{{"A", "B", "refs/heads/main"}}},
		},
		{
			name:    "nobody listens: fail closed",
			pushArg: []string{"main"},
			say:     []string{"gitmesh serve is gone", "[remote rejected] main -> main"},
			refs:    map[string]string{"refs/heads/main": "A"},
		},
		{
			name: "the repository's own pre-receive refuses first", listen: true,
			ownPre:  "#!/bin/sh\necho policy says no >&2\nexit 1\n",
			pushArg: []string{"main"},
			say:     []string{"policy says no", "[remote rejected] main -> main (pre-receive hook declined)"},
			refs:    map[string]string{"refs/heads/main": "A"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The remote holds main and old at A; the client has B on top.
			tmp := t.TempDir()
			remote, client := filepath.Join(tmp, "remote.git"), filepath.Join(tmp, "client")
			git(t, tmp, "init", "-q", "--bare", "-b", "main", remote)
			git(t, tmp, "init", "-q", "-b", "main", client)
			git(t, client, "commit", "-q", "--allow-empty", "-m", "A")
			commits := map[string]string{"A": revParse(t, client, "HEAD"), "": ""}
			git(t, client, "push", "-q", remote, "main", "main:old")
			git(t, client, "commit", "-q", "--allow-empty", "-m", "B")
			commits["B"] = revParse(t, client, "HEAD")
			resolve := func(s string) string {
				if c, ok := commits[s]; ok {
					return c
				}
				return s
			}

			post := filepath.Join(tmp, "post-receive.out")
			writeScript(t, filepath.Join(remote, "hooks", "post-receive"), "#!/bin/sh\ncat > "+shQuote(post)+"\n")
			if tt.ownPre != "" {
				writeScript(t, filepath.Join(remote, "hooks", "pre-receive"), tt.ownPre)
			}

			srv := listen(t)
			app := tt.app
			app.repo = remote
			var done <-chan struct{}
			if tt.listen {
				done = serve(t, srv, app.handle)
			} else {
				srv.Close()
			}

			rp := receivePack
			for _, c := range tt.server {
				rp += " -c " + shQuote(c)
			}
			args := append([]string{"push", "--receive-pack=" + rp + " receive-pack", remote}, tt.pushArg...)
			out, err := gitRun(t, client, []string{srv.Env()}, args...)
			t.Logf("git push:\n%s", out)
			if ok := err == nil; ok != tt.ok {
				t.Errorf("push succeeded = %v (%v), want %v", ok, err, tt.ok)
			}
			for _, s := range tt.say {
				s = strings.NewReplacer("A..B", commits["A"][:7]+".."+commits["B"][:7]).Replace(s)
				if !strings.Contains(out, s) {
					t.Errorf("push output lacks %q", s)
				}
			}
			if tt.once != "" && strings.Count(out, tt.once) != 1 {
				t.Errorf("push output holds %q %d times, want once", tt.once, strings.Count(out, tt.once))
			}
			for ref, want := range tt.refs {
				if got := revParse(t, remote, ref); got != resolve(want) {
					t.Errorf("%s = %q, want %s (%q)", ref, got, want, resolve(want))
				}
			}

			if done != nil {
				if tt.want == nil {
					srv.Close()
				}
				select {
				case <-done: // the handler is finished before app is read
				case <-time.After(time.Minute):
					t.Fatal("serve was never asked")
				}
			}
			if tt.want == nil {
				if app.push.Commands != nil || app.err != nil {
					t.Errorf("serve was asked: %+v, %v", app.push, app.err)
				}
			} else {
				want := *tt.want
				want.Commands = append([]Command(nil), want.Commands...)
				for i, c := range want.Commands {
					want.Commands[i] = Command{resolve(c.Old), resolve(c.New), c.Ref}
				}
				if app.err != nil {
					t.Errorf("serve: %v", app.err)
				}
				if !reflect.DeepEqual(app.push, want) {
					t.Errorf("serve read %+v, want %+v", app.push, want)
				}
				if tt.caps != "" && !strings.HasPrefix(app.raw.String(), pkt(tt.caps)+flush) {
					t.Errorf("receive-pack began with %.60q, want %q", app.raw.String(), pkt(tt.caps)+flush)
				}
			}

			body, err := os.ReadFile(post)
			if seen := err == nil; seen != tt.postSeen {
				t.Errorf("the repository's post-receive ran = %v, want %v", seen, tt.postSeen)
			}
			if tt.postSeen && tt.want != nil {
				var lines []string
				for _, c := range app.push.Commands {
					lines = append(lines, c.Old+" "+c.New+" "+c.Ref)
				}
				if got := strings.TrimSpace(string(body)); got != strings.Join(lines, "\n") {
					t.Errorf("post-receive read %q, want %q", got, lines)
				}
			}
		})
	}
}
