package config

import (
	"strings"
	"testing"
	"time"
)

func TestLimitDefaults(t *testing.T) {
	d := Defaults()
	if d.MaxUserSessions != 10 || d.MaxPushWaiters != 8 {
		t.Errorf("defaults: max_user_sessions %d, max_push_waiters %d; want 10 and 8", d.MaxUserSessions, d.MaxPushWaiters)
	}
	if d.PushTimeout.D() != 30*time.Minute || d.PushIdleTimeout.D() != 5*time.Minute {
		t.Errorf("defaults: push_timeout %s, push_idle_timeout %s; want 30m and 5m", d.PushTimeout.D(), d.PushIdleTimeout.D())
	}
	if d.MaxPushBytes != 2<<30 || d.MaxPushRefs != 10000 || d.LogRetention.D() != 90*24*time.Hour {
		t.Errorf("defaults: max_push_bytes %d, max_push_refs %d, log_retention %s; want 2 GiB, 10000, 90 days", d.MaxPushBytes, d.MaxPushRefs, d.LogRetention.D())
	}
	if err := d.CheckLimits(); err != nil {
		t.Errorf("the defaults are refused: %v", err)
	}
}

func TestLimits(t *testing.T) {
	for _, tc := range []struct {
		line    string
		bad     bool
		mention string
	}{
		{"max_user_sessions = 1", false, ""},
		{"max_user_sessions = 1000", false, ""},
		{"max_user_sessions = 0", true, "max_user_sessions must be a number from 1 to 1000"},
		{"max_user_sessions = -3", true, "max_user_sessions"},
		{"max_user_sessions = 1001", true, "max_user_sessions"},
		{`max_user_sessions = "10"`, true, "max_user_sessions"},
		{"max_push_waiters = 0", false, ""},
		{"max_push_waiters = -1", true, "max_push_waiters must be a number from 0 to 1000"},
		{"max_push_waiters = 5000", true, "max_push_waiters"},
		{`push_timeout = "45m"`, false, ""},
		{`push_timeout = "0s"`, true, "push_timeout must be at least 1s"},
		{`push_timeout = "-5m"`, true, "push_timeout"},
		{`push_timeout = "soon"`, true, "push_timeout"},
		{`push_idle_timeout = "1s"`, false, ""},
		{`push_idle_timeout = "500ms"`, true, "push_idle_timeout must be at least 1s"},
		{`push_idle_timeout = 300`, true, "push_idle_timeout"},
		{`keys_database_url = "postgres://keys@db/gitmesh"`, false, ""},
		{"max_push_bytes = 1048576", false, ""},
		{"max_push_bytes = 1000", true, "max_push_bytes must be at least 1048576"},
		{"max_push_refs = 1", false, ""},
		{"max_push_refs = 0", true, "max_push_refs must be a number from 1 up"},
		{`log_retention = "0s"`, false, ""},
		{`log_retention = "720h"`, false, ""},
		{`log_retention = "-1h"`, true, "log_retention"},
		{`ssh_control_dir = "/run/gitmesh-ssh"`, false, ""},
		{`ssh_control_dir = "run/gitmesh-ssh"`, true, "ssh_control_dir must be an absolute path"},
	} {
		s := Defaults()
		err := LoadFile(&s, writeConfig(t, tc.line+"\n"))
		if (err != nil) != tc.bad {
			t.Errorf("%s: error %v, want error %v", tc.line, err, tc.bad)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s: error %q does not say %q", tc.line, err, tc.mention)
		}
	}
}

func TestKeysURLFallsBackToDatabaseURL(t *testing.T) {
	s := Settings{DatabaseURL: "postgres://serve@db/gitmesh"}
	if got := s.KeysURL(); got != s.DatabaseURL {
		t.Errorf("KeysURL() without keys_database_url = %q, want database_url", got)
	}
	s.KeysDatabaseURL = "postgres://keys@db/gitmesh"
	if got := s.KeysURL(); got != "postgres://keys@db/gitmesh" {
		t.Errorf("KeysURL() = %q, want keys_database_url", got)
	}
}
