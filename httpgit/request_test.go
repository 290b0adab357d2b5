package httpgit

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"gitmesh/gitexec"
)

func TestParse(t *testing.T) {
	get := func(path, query string) CGI { return CGI{Method: "GET", PathInfo: path, Query: query} }
	post := func(path, svc string) CGI {
		return CGI{Method: "POST", PathInfo: path, ContentType: "application/x-" + svc + "-request"}
	}
	for _, tc := range []struct {
		name string
		in   CGI
		want Route
		code int
	}{
		{"advertise upload-pack", get("/team/app.git/info/refs", "service=git-upload-pack"), Route{gitexec.UploadPack, "team/app", true}, 0},
		{"advertise receive-pack", get("/team/app/info/refs", "service=git-receive-pack"), Route{gitexec.ReceivePack, "team/app", true}, 0},
		{"fetch", post("/team/app.git/git-upload-pack", "git-upload-pack"), Route{gitexec.UploadPack, "team/app", false}, 0},
		{"push", post("/app.git/git-receive-pack", "git-receive-pack"), Route{gitexec.ReceivePack, "app", false}, 0},
		{"dumb info/refs", get("/team/app.git/info/refs", ""), Route{}, 403},
		{"dumb HEAD", get("/team/app.git/HEAD", ""), Route{}, 403},
		{"dumb object", get("/team/app.git/objects/12/3456", ""), Route{}, 403},
		{"dumb packs", get("/team/app.git/objects/info/packs", ""), Route{}, 403},
		{"archive", post("/team/app.git/git-upload-archive", "git-upload-archive"), Route{}, 403},
		{"unknown service", get("/team/app.git/info/refs", "service=git-upload-archive"), Route{}, 403},
		{"service twice", get("/team/app.git/info/refs", "service=git-upload-pack&service=git-receive-pack"), Route{gitexec.UploadPack, "team/app", true}, 0},
		{"bad query", get("/team/app.git/info/refs", "service=%zz"), Route{}, 403},
		{"post info/refs", post("/team/app.git/info/refs", "git-upload-pack"), Route{}, 405},
		{"get service", get("/team/app.git/git-upload-pack", ""), Route{}, 405},
		{"wrong content type", CGI{Method: "POST", PathInfo: "/a.git/git-receive-pack", ContentType: "application/x-git-upload-pack-request"}, Route{}, 415},
		{"dot dot", get("/team/../etc.git/info/refs", "service=git-upload-pack"), Route{}, 400},
		{"dot dot name", get("/..git/info/refs", "service=git-upload-pack"), Route{}, 400},
		{"absolute", get("//etc/passwd/info/refs", "service=git-upload-pack"), Route{}, 400},
		{"encoded slash left encoded", get("/team%2Fapp.git/info/refs", "service=git-upload-pack"), Route{}, 400},
		{"newline", get("/team/app\n.git/info/refs", "service=git-upload-pack"), Route{}, 400},
		{"NUL", get("/team/app\x00.git/info/refs", "service=git-upload-pack"), Route{}, 400},
		{"DEL", get("/team/a\x7fpp.git/info/refs", "service=git-upload-pack"), Route{}, 400},
		{"escape", get("/team/\x1b[31mapp.git/info/refs", "service=git-upload-pack"), Route{}, 400},
		{"long", get("/"+strings.Repeat("a/", 600)+"info/refs", "service=git-upload-pack"), Route{}, 414},
		{"long name", get("/"+strings.Repeat("a", 300)+".git/info/refs", "service=git-upload-pack"), Route{}, 400},
		{"no leading slash", get("team/app.git/info/refs", "service=git-upload-pack"), Route{}, 404},
		{"empty", get("", ""), Route{}, 404},
		{"only endpoint", get("/info/refs", "service=git-upload-pack"), Route{}, 400},
		{"hidden namespace", get("/.gitmesh/hooks.git/info/refs", "service=git-upload-pack"), Route{}, 400},
		{"option", get("/-u.git/info/refs", "service=git-upload-pack"), Route{}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.code == 0 {
				if err != nil || got != tc.want {
					t.Fatalf("Parse(%+v) = %+v, %v; want %+v", tc.in, got, err, tc.want)
				}
				return
			}
			se, ok := IsStatus(err)
			if !ok || se.Code != tc.code {
				t.Fatalf("Parse(%+v) = %+v, %v; want status %d", tc.in, got, err, tc.code)
			}
			if strings.ContainsAny(se.Msg, "\n\r\x00\x1b") {
				t.Fatalf("message %q is not one plain line", se.Msg)
			}
		})
	}
}

// FuzzParse: whatever the web server hands over, Parse never panics,
// answers a status or a name inside the rules, and never repeats the
// path's control characters in its sentence.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"/team/app.git/info/refs", "/a/git-receive-pack", "/../x/info/refs", "/a\x00/git-upload-pack", "/%2e%2e/info/refs"} {
		f.Add("GET", s, "service=git-upload-pack", "")
		f.Add("POST", s, "", "application/x-git-upload-pack-request")
	}
	f.Fuzz(func(t *testing.T, method, path, query, ctype string) {
		r, err := Parse(CGI{Method: method, PathInfo: path, Query: query, ContentType: ctype})
		if err != nil {
			se, ok := IsStatus(err)
			if !ok || se.Code < 400 || se.Code > 499 {
				t.Fatalf("%q: %v is not a 4xx answer", path, err)
			}
			if strings.ContainsFunc(se.Msg, func(r rune) bool { return r < 0x20 || r == 0x7f }) || !utf8.ValidString(se.Msg) {
				t.Fatalf("%q: message %q", path, se.Msg)
			}
			return
		}
		if err := gitexec.ValidateName(r.Repo); err != nil {
			t.Fatalf("%q: parsed to %q, outside the rules: %v", path, r.Repo, err)
		}
		if r.Verb != gitexec.UploadPack && r.Verb != gitexec.ReceivePack {
			t.Fatalf("%q: verb %q", path, r.Verb)
		}
	})
}

func TestBasic(t *testing.T) {
	for _, tc := range []struct {
		in         string
		user, pass string
		ok         bool
	}{
		{"Basic YWxpY2U6Z21fc2VjcmV0", "alice", "gm_secret", true},
		{"basic YWxpY2U6Z21fc2VjcmV0", "alice", "gm_secret", true},
		{"Bearer YWxpY2U6Z21fc2VjcmV0", "", "", false},
		{"Basic !!!", "", "", false},
		{"Basic YWxpY2U=", "", "", false},         // alice, no colon
		{"Basic OmdtX3NlY3JldA==", "", "", false}, // empty user
		{"Basic YWxpY2U6", "", "", false},         // empty password
		{"Basic YSBiOmdtX3g=", "", "", false},     // "a b:gm_x": blank in the user
		{"", "", "", false},
	} {
		u, p, ok := Basic(tc.in)
		if u != tc.user || p != tc.pass || ok != tc.ok {
			t.Errorf("Basic(%q) = %q, %q, %v; want %q, %q, %v", tc.in, u, p, ok, tc.user, tc.pass, tc.ok)
		}
	}
}

// The side band adds told lines between git's packets, before its
// closing flush, as band 2; after the flush nothing is added.
func TestSidebandTell(t *testing.T) {
	var out bytes.Buffer
	s := &sideband{out: &out, on: true}
	report := "\x01000eunpack ok\n0000"
	if !s.Tell("stored on 2 of 3 devices") {
		t.Fatal("Tell refused before git wrote")
	}
	// git writes one band-1 packet in two pieces, then the flush.
	one := "0017" + report[:19]
	s.Write([]byte(one[:3]))
	s.Write([]byte(one[3:]))
	s.Write([]byte("0000"))
	if s.Tell("late") {
		t.Fatal("Tell accepted a line after the closing flush")
	}
	want := "0027\x02gitmesh: stored on 2 of 3 devices\n" + one + "0000"
	if out.String() != want {
		t.Fatalf("got %q\nwant %q", out.String(), want)
	}
}

func TestAsksSideband(t *testing.T) {
	cmd := func(caps string) string {
		l := strings.Repeat("0", 40) + " " + strings.Repeat("1", 40) + " refs/heads/main\x00" + caps
		return fmt.Sprintf("%04x", len(l)+4) + l
	}
	for in, want := range map[string]bool{
		cmd("report-status side-band-64k agent=git/2.39"): true,
		cmd("report-status"):                              false,
		"0000":                                            false,
		"":                                                false,
		"zzzz":                                            false,
	} {
		br := bufio.NewReader(strings.NewReader(in))
		if got := asksSideband(br); got != want {
			t.Errorf("asksSideband(%q) = %v, want %v", in, got, want)
		}
		if rest, _ := br.ReadString(0xff); rest != in {
			t.Errorf("asksSideband consumed input: left %q of %q", rest, in)
		}
	}
}

// FuzzBasic: any Authorization header parses to nothing or to a user
// without blanks or control characters and a non-empty secret.
func FuzzBasic(f *testing.F) {
	for _, s := range []string{"Basic YWxpY2U6Z21fc2VjcmV0", "Basic ", "basic YTpi", "Basic YSBiOmM=", "Negotiate x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		u, p, ok := Basic(h)
		if !ok {
			if u != "" || p != "" {
				t.Fatalf("%q: refused but returned %q, %q", h, u, p)
			}
			return
		}
		if u == "" || p == "" || strings.ContainsFunc(u, func(r rune) bool { return r < 0x21 || r == 0x7f }) || strings.Contains(u, ":") {
			t.Fatalf("%q: user %q, secret %q", h, u, p)
		}
	})
}

// FuzzSideband: whatever receive-pack writes, in whatever pieces, the
// filter passes every byte through in order, adding only whole band-2
// packets before the first flush.
func FuzzSideband(f *testing.F) {
	f.Add([]byte("0017\x01000eunpack ok\n0000"), uint8(3))
	f.Add([]byte("zzzz0000"), uint8(1))
	f.Add([]byte("0005\x020000extra"), uint8(2))
	f.Fuzz(func(t *testing.T, in []byte, cut uint8) {
		var out bytes.Buffer
		s := &sideband{out: &out, on: true}
		s.Tell("told")
		step := int(cut%7) + 1
		for i := 0; i < len(in); i += step {
			s.Write(in[i:min(i+step, len(in))])
			s.Tell("told")
		}
		got := out.Bytes()
		told := []byte("0013\x02gitmesh: told\n")
		// Removing the told packets gives back exactly git's bytes (but
		// for an unfinished packet header at the very end, held back).
		want := in[:len(in)-len(s.hdr)]
		if back := bytes.ReplaceAll(got, told, nil); !bytes.Equal(back, want) && !bytes.Contains(in, told) {
			t.Fatalf("in %q\nout %q", in, got)
		}
	})
}
