package gitexec

import (
	"errors"
	"strings"
	"testing"
)

func TestPassOnCommandRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		user, protocol string
		cmd            Command
	}{
		{"alice", "", Command{Verb: UploadPack, Repo: "team/app"}},
		{"bob.b-1_x", "version=2", Command{Verb: ReceivePack, Repo: "app"}},
		{"c", "version=2:object-format=sha256", Command{Verb: UploadArchive, Repo: "a/b/c"}},
		{"alice", "version=2", Command{Verb: UploadPack, Repo: "team/app", HTTP: HTTPAdvertise}},
		{"alice", "", Command{Verb: ReceivePack, Repo: "team/app", HTTP: HTTPRPC}},
	} {
		s, err := PassOnCommand(tt.user, tt.protocol, tt.cmd)
		if err != nil {
			t.Fatalf("PassOnCommand(%q, %q, %+v): %v", tt.user, tt.protocol, tt.cmd, err)
		}
		if IsPassedOn(s) == (tt.cmd.HTTP != "") || IsPassedOnHTTP(s) != (tt.cmd.HTTP != "") {
			t.Errorf("%q: IsPassedOn %v, IsPassedOnHTTP %v", s, IsPassedOn(s), IsPassedOnHTTP(s))
		}
		got, err := ParseClusterCommand(s)
		want := Command{Verb: tt.cmd.Verb, Repo: tt.cmd.Repo, User: tt.user, Protocol: tt.protocol, HTTP: tt.cmd.HTTP}
		if err != nil || got != want || !got.PassedOn() {
			t.Errorf("ParseClusterCommand(%q) = %+v, %v; want %+v", s, got, err, want)
		}
	}
}

func TestParsePassedOnRejects(t *testing.T) {
	for _, in := range []string{
		"gitmesh-as",
		"gitmesh-as alice",
		"gitmesh-as alice -",
		"gitmesh-as alice - sh 'app.git'",
		"gitmesh-as alice - gitmesh-sync 'app.git'",
		"gitmesh-as alice - gitmesh-stage 'app.git'",
		"gitmesh-as alice - gitmesh-as bob - git-upload-pack 'app.git'",
		"gitmesh-as -alice - git-upload-pack 'app.git'",
		"gitmesh-as .alice - git-upload-pack 'app.git'",
		"gitmesh-as al/ice - git-upload-pack 'app.git'",
		"gitmesh-as " + strings.Repeat("a", 65) + " - git-upload-pack 'app.git'",
		"gitmesh-as alice version=2;id git-upload-pack 'app.git'",
		"gitmesh-as alice  git-upload-pack 'app.git'",
		"gitmesh-as alice - git-upload-pack '../app.git'",
		"gitmesh-as alice - git-upload-pack 'app.git'\n",
		"gitmesh-as alice - git-upload-pack 'app.git' " + strings.Repeat("x", MaxCommandLen),
		"gitmesh-as-http alice - git-upload-pack 'app.git'",
		"gitmesh-as-http alice - post git-upload-pack 'app.git'",
		"gitmesh-as-http alice - rpc git-upload-archive 'app.git'",
		"gitmesh-as-http alice - rpc gitmesh-sync 'app.git'",
	} {
		cmd, err := ParseClusterCommand(in)
		if err == nil {
			t.Errorf("ParseClusterCommand(%q) = %+v, want an error", in, cmd)
		} else if !errors.Is(err, ErrBadCommand) && !errors.Is(err, ErrBadName) {
			t.Errorf("ParseClusterCommand(%q): %v is neither ErrBadCommand nor ErrBadName", in, err)
		}
	}
	// The staging push of many refs is the cluster key's alone.
	if cmd, err := ParseClusterCommand("gitmesh-stage '/team/app.git'"); err != nil || cmd != (Command{Verb: StageVerb, Repo: "team/app"}) {
		t.Errorf("ParseClusterCommand(gitmesh-stage) = %+v, %v", cmd, err)
	}
	if cmd, err := ParseCommand("gitmesh-stage 'team/app.git'"); err == nil {
		t.Errorf("ParseCommand accepted a staging push from a user: %+v", cmd)
	}
	// A user's own command line never carries a user to serve as.
	if cmd, err := ParseCommand("gitmesh-as alice - git-upload-pack 'app.git'"); err == nil {
		t.Errorf("ParseCommand accepted a passed-on request from a user: %+v", cmd)
	}
	if _, err := PassOnCommand("al ice", "", Command{Verb: UploadPack, Repo: "app"}); err == nil {
		t.Error("PassOnCommand accepted a user name with a space")
	}
	if _, err := PassOnCommand("alice", "x y", Command{Verb: UploadPack, Repo: "app"}); err == nil {
		t.Error("PassOnCommand accepted a protocol with a space")
	}
}

func FuzzParseClusterCommand(f *testing.F) {
	for _, s := range []string{"gitmesh-as alice - git-upload-pack 'team/app.git'", "gitmesh-as a version=2 git receive-pack 'x'",
		"gitmesh-sync 'a.git'", "git-upload-pack '/x.git'", "gitmesh-as  - x", "",
		"gitmesh-as-http a - advertise git-receive-pack 'x.git'", "gitmesh-as-http a version=2 rpc git-upload-pack 'x'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cmd, err := ParseClusterCommand(s)
		if err != nil {
			if !errors.Is(err, ErrBadCommand) && !errors.Is(err, ErrBadName) {
				t.Fatalf("%q: error %v is neither ErrBadCommand nor ErrBadName", s, err)
			}
			return
		}
		if cmd.PassedOn() {
			again, err := PassOnCommand(cmd.User, cmd.Protocol, Command{Verb: cmd.Verb, Repo: cmd.Repo, HTTP: cmd.HTTP})
			if err != nil {
				t.Fatalf("%q parsed to %+v, which PassOnCommand refuses: %v", s, cmd, err)
			}
			if back, err := ParseClusterCommand(again); err != nil || back != cmd {
				t.Fatalf("%q: %+v does not round-trip through %q: %+v, %v", s, cmd, again, back, err)
			}
		}
	})
}
