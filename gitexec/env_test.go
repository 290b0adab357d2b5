package gitexec

import (
	"slices"
	"strings"
	"testing"
)

// Env keeps only PATH, HOME, USER, LOGNAME, TMPDIR and TZ of the caller's
// environment, plus GIT_PROTOCOL when it holds what git clients send. Every
// other variable, however harmless it looks, stays behind: sshd passes on
// what the client may set (AcceptEnv), and git reads dozens of variables
// that point it at other repositories, configs, programs or libraries.
func TestEnv(t *testing.T) {
	base := []string{"PATH=/usr/bin:/bin", "HOME=/srv/git", "USER=git", "LOGNAME=git", "TMPDIR=/tmp", "TZ=UTC"}
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"empty", nil, nil},
		{"the allowlist passes", base, base},
		{"one of each kept", []string{"HOME=/srv/git", "PATH=/bin"}, []string{"HOME=/srv/git", "PATH=/bin"}},
		{"empty values are kept", []string{"TZ=", "TMPDIR="}, []string{"TZ=", "TMPDIR="}},
		{"repository and object locations", append(base,
			"GIT_DIR=/etc", "GIT_WORK_TREE=/", "GIT_COMMON_DIR=/tmp/x", "GIT_INDEX_FILE=/tmp/i",
			"GIT_OBJECT_DIRECTORY=/tmp/o", "GIT_ALTERNATE_OBJECT_DIRECTORIES=/srv/git/repos/secret.git/objects",
			"GIT_NAMESPACE=other", "GIT_CEILING_DIRECTORIES=/"), base},
		{"config injection", append(base,
			"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=core.hooksPath", "GIT_CONFIG_VALUE_0=/tmp/evil",
			"GIT_CONFIG_PARAMETERS='core.sshCommand'='touch /tmp/pwned'", "GIT_CONFIG=/tmp/evil.conf",
			"GIT_CONFIG_GLOBAL=/tmp/evil.conf", "GIT_CONFIG_SYSTEM=/tmp/evil.conf", "GIT_CONFIG_NOSYSTEM=1"), base},
		{"programs git would run", append(base,
			"GIT_EXEC_PATH=/tmp/evil", "GIT_SSH=/tmp/evil", "GIT_SSH_COMMAND=touch /tmp/pwned", "GIT_ASKPASS=/tmp/evil",
			"GIT_EDITOR=/tmp/evil", "GIT_PAGER=/tmp/evil", "GIT_EXTERNAL_DIFF=/tmp/evil", "GIT_TRACE=/tmp/trace",
			"GIT_TRACE_PACKET=1", "GIT_ALLOW_PROTOCOL=ext"), base},
		{"loader and shell variables", append(base,
			"LD_PRELOAD=/tmp/evil.so", "LD_LIBRARY_PATH=/tmp", "LD_AUDIT=/tmp/evil.so", "BASH_ENV=/tmp/evil.sh",
			"ENV=/tmp/evil.sh", "IFS=/", "PS4=$(touch /tmp/pwned)", "SHELLOPTS=xtrace", "PERL5OPT=-Mevil"), base},
		{"gitmesh's own settings", append(base,
			"GITMESH_DATABASE_URL=postgres://gitmesh:secret@db/gitmesh", "GITMESH_CONFIG=/etc/gitmesh.toml",
			"GITMESH_CLUSTER_KEY=/etc/gitmesh/cluster_key", "PGPASSWORD=secret", "PGHOST=db"), base},
		{"the ssh session", append(base,
			"SSH_ORIGINAL_COMMAND=git-upload-pack 'team/app'", "SSH_CONNECTION=10.0.0.1 5 10.0.0.2 22",
			"SSH_CLIENT=10.0.0.1 5 22", "LANG=C.UTF-8", "LC_ALL=C", "TERM=xterm", "SHELL=/bin/sh", "MAIL=/var/mail/git"), base},
		{"names that only start like a kept one", []string{
			"PATHX=/tmp", "PATH_EXTRA=/tmp", "HOMEDIR=/tmp", "USERNAME=root", "TZDIR=/tmp", "TMPDIRS=/tmp",
			"path=/tmp", "Path=/tmp", "PATH =/tmp", " PATH=/tmp", "=PATH=/tmp", "GIT_PROTOCOLS=version=2",
			"GIT_PROTOCOL_X=version=2", "XGIT_PROTOCOL=version=2"}, nil},
		{"GIT_PROTOCOL version=2", append(base, "GIT_PROTOCOL=version=2"), append(base, "GIT_PROTOCOL=version=2")},
		{"GIT_PROTOCOL alone", []string{"GIT_PROTOCOL=version=2"}, []string{"GIT_PROTOCOL=version=2"}},
		{"GIT_PROTOCOL colon separated", []string{"GIT_PROTOCOL=version=2:object-format=sha256"},
			[]string{"GIT_PROTOCOL=version=2:object-format=sha256"}},
		{"GIT_PROTOCOL of 64 bytes", []string{"GIT_PROTOCOL=version=" + strings.Repeat("2", 56)},
			[]string{"GIT_PROTOCOL=version=" + strings.Repeat("2", 56)}},
		{"GIT_PROTOCOL of 65 bytes", []string{"GIT_PROTOCOL=version=" + strings.Repeat("2", 57)}, nil},
		{"GIT_PROTOCOL empty", []string{"GIT_PROTOCOL="}, nil},
		{"GIT_PROTOCOL without a value", []string{"GIT_PROTOCOL"}, nil},
		{"GIT_PROTOCOL with a space", append(base, "GIT_PROTOCOL=version=2 --upload-pack=touch /tmp/pwned"), base},
		{"GIT_PROTOCOL with a semicolon", append(base, "GIT_PROTOCOL=version=2;touch /tmp/pwned"), base},
		{"GIT_PROTOCOL with a newline", []string{"GIT_PROTOCOL=version=2\nLD_PRELOAD=/tmp/evil.so"}, nil},
		{"GIT_PROTOCOL with a tab", []string{"GIT_PROTOCOL=version=2\t"}, nil},
		{"GIT_PROTOCOL with shell syntax", []string{"GIT_PROTOCOL=$(touch /tmp/pwned)", "GIT_PROTOCOL=`id`",
			"GIT_PROTOCOL=version=2|id", "GIT_PROTOCOL=version=2&id", "GIT_PROTOCOL='version=2'"}, nil},
		{"GIT_PROTOCOL with a path or a NUL", []string{"GIT_PROTOCOL=version=2/../../etc", "GIT_PROTOCOL=version=2\x00x"}, nil},
		{"GIT_PROTOCOL not ASCII", []string{"GIT_PROTOCOL=versión=2", "GIT_PROTOCOL=version\uff1d2"}, nil},
		{"a bad GIT_PROTOCOL beside a good one", []string{"GIT_PROTOCOL=version=2;id", "GIT_PROTOCOL=version=2"},
			[]string{"GIT_PROTOCOL=version=2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			got := Env(in)
			if !slices.Equal(in, tt.in) {
				t.Errorf("Env changed its argument: %q", in)
			}
			if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(tt.want))) {
				t.Errorf("Env(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}
