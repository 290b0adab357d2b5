package gitexec

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestParseCommandAccepts(t *testing.T) {
	tests := []struct {
		in   string
		verb Verb
		repo string
	}{
		{"git-upload-pack 'team/app.git'", UploadPack, "team/app"},
		{"git-upload-pack '/team/app.git'", UploadPack, "team/app"},
		{"git-upload-pack 'team/app'", UploadPack, "team/app"},
		{"git-upload-pack '/team/app'", UploadPack, "team/app"},
		{"git-upload-pack team/app.git", UploadPack, "team/app"},
		{"git-upload-pack /team/app", UploadPack, "team/app"},
		{"git-receive-pack 'team/app.git'", ReceivePack, "team/app"},
		{"git-upload-archive 'team/app.git'", UploadArchive, "team/app"},
		{"git upload-pack 'team/app.git'", UploadPack, "team/app"},
		{"git receive-pack '/team/app.git'", ReceivePack, "team/app"},
		{"git upload-archive 'app'", UploadArchive, "app"},
		{"git-upload-pack 'a'", UploadPack, "a"},
		{"git-upload-pack 'A-b_c.d/e.f-g/h_1'", UploadPack, "A-b_c.d/e.f-g/h_1"},
		{"git-upload-pack 'app.git.d'", UploadPack, "app.git.d"},
		{"git-upload-pack 'v1.2/app.'", UploadPack, "v1.2/app."},
		{"git-upload-pack '" + strings.Repeat("a/", MaxSegments-1) + "a'", UploadPack, strings.Repeat("a/", MaxSegments-1) + "a"},
		{"git-upload-pack '" + strings.Repeat("x", MaxSegmentLen) + "'", UploadPack, strings.Repeat("x", MaxSegmentLen)},
	}
	for _, tt := range tests {
		got, err := ParseCommand(tt.in)
		if err != nil {
			t.Errorf("ParseCommand(%q): %v", tt.in, err)
			continue
		}
		if got.Verb != tt.verb || got.Repo != tt.repo {
			t.Errorf("ParseCommand(%q) = %+v, want %s %s", tt.in, got, tt.verb, tt.repo)
		}
		if got.Verb.IsWrite() != (tt.verb == ReceivePack) {
			t.Errorf("ParseCommand(%q): IsWrite = %v", tt.in, got.Verb.IsWrite())
		}
	}
}

func TestParseCommandRejects(t *testing.T) {
	tests := []struct {
		in      string
		wantErr error  // ErrBadCommand or ErrBadName
		msg     string // a piece of the user's sentence
	}{
		{"", ErrBadCommand, "interactive login"},
		{"sh", ErrBadCommand, "unknown command"},
		{"bash -i", ErrBadCommand, "unknown command"},
		{"git-upload-pack", ErrBadCommand, "the repository path is missing: git-upload-pack needs one"},
		{"git-upload-pack ", ErrBadCommand, "the repository path is missing"},
		{"git upload-pack", ErrBadCommand, "the repository path is missing: git upload-pack needs one"},
		{"git-receive-pack  ", ErrBadCommand, "the repository path is missing"},
		{"git", ErrBadCommand, "unknown command"},
		{"git-upload-pac 'app'", ErrBadCommand, "unknown command"},
		{"git-upload-packs 'app'", ErrBadCommand, "unknown command"},
		{"GIT-UPLOAD-PACK 'app'", ErrBadCommand, "unknown command"},
		{"git-shell -c 'git-upload-pack app'", ErrBadCommand, "unknown command"},
		{"git config --list", ErrBadCommand, "unknown command"},
		{"/usr/bin/git-upload-pack 'app'", ErrBadCommand, "unknown command"},
		{"git  upload-pack 'app'", ErrBadCommand, "unknown command"},
		{" git-upload-pack 'app'", ErrBadCommand, "unknown command"},
		{"git-upload-pack\t'app'", ErrBadCommand, "control character"},
		{"git-upload-pack 'app'\n", ErrBadCommand, "control character"},
		{"git-upload-pack 'app'\nrm -rf /", ErrBadCommand, "control character"},
		{"git-upload-pack 'app'\x00; id", ErrBadCommand, "control character"},
		{"git-upload-pack 'app'\x7f", ErrBadCommand, "control character"},
		{"git-upload-pack 'app'\r", ErrBadCommand, "control character"},
		{"git-upload-pack 'app'; rm -rf /", ErrBadCommand, "quoted"},
		{"git-upload-pack 'app' 'other'", ErrBadCommand, "quoted"},
		{"git-upload-pack 'app", ErrBadCommand, "quoted"},
		{"git-upload-pack app'", ErrBadCommand, "quoted"},
		{"git-upload-pack '", ErrBadCommand, "quoted"},
		{"git-upload-pack \"app\"", ErrBadCommand, "quoted"},
		{"git-upload-pack 'a'\\''b'", ErrBadCommand, "quoted"},
		{"git-upload-pack  'app'", ErrBadCommand, "quoted"},
		{"git-upload-pack app\\", ErrBadCommand, "quoted"},
		{"git-upload-pack app;id", ErrBadName, ""},
		{"git-upload-pack app|id", ErrBadName, ""},
		{"git-upload-pack $(id)", ErrBadName, ""},
		{"git-upload-pack `id`", ErrBadName, ""},
		{"git-upload-pack app&&id", ErrBadName, ""},
		{"git-upload-pack app other", ErrBadName, ""},
		{"git-upload-pack ''", ErrBadName, "empty"},
		{"git-upload-pack '/'", ErrBadName, "empty"},
		{"git-upload-pack '.git'", ErrBadName, "empty"},
		{"git-upload-pack '/.git'", ErrBadName, "empty"},
		{"git-upload-pack '--upload-pack=id'", ErrBadName, "starts with"},
		{"git-upload-pack '--help'", ErrBadName, "starts with"},
		{"git-upload-pack -h", ErrBadName, "starts with"},
		{"git-receive-pack '--receive-pack=touch /tmp/x'", ErrBadName, ""},
		{"git-upload-pack 'team/-x'", ErrBadName, "starts with"},
		{"git-upload-pack '../etc'", ErrBadName, "starts with"},
		{"git-upload-pack 'team/../../etc'", ErrBadName, "starts with"},
		{"git-upload-pack 'team/..'", ErrBadName, "starts with"},
		{"git-upload-pack 'a..b'", ErrBadName, `".."`},
		{"git-upload-pack 'team/./app'", ErrBadName, "starts with"},
		{"git-upload-pack '.ssh/authorized_keys'", ErrBadName, "starts with"},
		{"git-upload-pack '//etc/passwd'", ErrBadName, "empty part"},
		{"git-upload-pack 'team//app'", ErrBadName, "empty part"},
		{"git-upload-pack 'team/app/'", ErrBadName, "empty part"},
		{"git-upload-pack 'team/app.git/'", ErrBadName, ".git"},
		{"git-upload-pack 'app.git.git'", ErrBadName, ".git"},
		{"git-upload-pack 'app.git/objects'", ErrBadName, ".git"},
		{"git-upload-pack '%2e%2e/etc'", ErrBadName, "may only hold"},
		{"git-upload-pack '~root'", ErrBadName, "may only hold"},
		{"git-upload-pack 'team/app*'", ErrBadName, "may only hold"},
		{"git-upload-pack 'caf\u00e9'", ErrBadName, "may only hold"},
		{"git-upload-pack 'te\u0430m/app'", ErrBadName, "may only hold"},    // Cyrillic a
		{"git-upload-pack 'team\u2215app'", ErrBadName, "may only hold"},    // division slash
		{"git-upload-pack '\u2024\u2024/etc'", ErrBadName, "may only hold"}, // one dot leaders
		{"git-upload-pack 'app\u200b'", ErrBadName, "may only hold"},        // zero width space
		{"git\u2010upload-pack 'app'", ErrBadCommand, "unknown command"},    // hyphen look-alike
		{"git-upload-pack 'app\xff'", ErrBadName, "may only hold"},          // invalid UTF-8
		{"git-upload-pack '" + strings.Repeat("a/", MaxSegments) + "a'", ErrBadName, "parts"},
		{"git-upload-pack '" + strings.Repeat("x", MaxSegmentLen+1) + "'", ErrBadName, "longer"},
		{"git-upload-pack '" + strings.Repeat("abcdefghi/", 20) + "x'", ErrBadName, "longer"},
		{"git-upload-pack '" + strings.Repeat("a", MaxCommandLen) + "'", ErrBadCommand, "longer"},
	}
	for _, tt := range tests {
		got, err := ParseCommand(tt.in)
		if err == nil {
			t.Errorf("ParseCommand(%q) = %+v, want an error", tt.in, got)
			continue
		}
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("ParseCommand(%q): %v, want %v", tt.in, err, tt.wantErr)
		}
		if !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ParseCommand(%q): %q does not say %q", tt.in, err, tt.msg)
		}
		if strings.ContainsAny(err.Error(), "\n\r\x00") {
			t.Errorf("ParseCommand(%q): message is not one clean line: %q", tt.in, err)
		}
		if got != (Command{}) {
			t.Errorf("ParseCommand(%q) returned %+v with its error", tt.in, got)
		}
	}
}

// The user's sentence echoes at most a short, escaped piece of the input.
func TestParseCommandMessageIsShort(t *testing.T) {
	_, err := ParseCommand(strings.Repeat("\u00e9", 400))
	if err == nil || len(err.Error()) > 300 {
		t.Fatalf("message for overlong input: %v", err)
	}
}

func TestErrPacket(t *testing.T) {
	for _, tt := range []struct{ msg, want string }{
		{"repository not found", "001dERR repository not found\n"},
		{"two\nlines  here", "0017ERR two lines here\n"},
	} {
		if got := string(ErrPacket(tt.msg)); got != tt.want {
			t.Errorf("ErrPacket(%q) = %q, want %q", tt.msg, got, tt.want)
		}
	}
	long := ErrPacket(strings.Repeat("x", 70000))
	if len(long) != 65520 || string(long[:4]) != "fff0" || long[len(long)-1] != '\n' {
		t.Errorf("a long message gives %d bytes starting %q; want one packet of 65520", len(long), long[:4])
	}
}

func TestHungUp(t *testing.T) {
	for _, tt := range []struct {
		script string
		want   bool
	}{
		{"kill -PIPE $$", true}, // a write to a client that hung up
		{"kill -TERM $$", false},
		{"exit 1", false},
		{"exit 0", false},
	} {
		err := exec.Command("sh", "-c", tt.script).Run()
		if got := HungUp(err); got != tt.want {
			t.Errorf("HungUp after %q (%v) = %v, want %v", tt.script, err, got, tt.want)
		}
	}
}

// Refuse writes the line on stderr, then its ERR packet on stdout once
// the reader of stderr has taken the line.
func TestRefuse(t *testing.T) {
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderrRead := make(chan string, 1)
	go func() {
		b := make([]byte, 100)
		n, _ := errR.Read(b)
		stderrRead <- string(b[:n])
	}()
	Refuse(outW, errW, "gitmesh: no")
	outW.Close()
	errW.Close()
	if got := <-stderrRead; got != "gitmesh: no\n" {
		t.Errorf("stderr %q, want the line", got)
	}
	if got, _ := io.ReadAll(outR); string(got) != "0014ERR gitmesh: no\n" {
		t.Errorf("stdout %q, want the ERR packet", got)
	}
}
