package meshtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The web server the harness runs in front of a device: real nginx,
// passing requests to real fcgiwrap, which runs `gitmesh http-backend`
// (and `gitmesh http-auth` for nginx's auth_request) per request, as
// the README's configuration does.
const (
	Nginx    = "/usr/sbin/nginx"
	FCGIWrap = "/usr/sbin/fcgiwrap"
)

// RequireNginx fails the test (never skips it) when nginx or fcgiwrap is
// missing, with the command that installs them.
func RequireNginx(t testing.TB) {
	t.Helper()
	var missing []string
	for pkg, path := range map[string]string{"nginx": Nginx, "fcgiwrap": FCGIWrap} {
		if _, err := os.Stat(path); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("meshtest: %s missing; run: sudo apt-get install -y %s (or scripts/setup.sh)",
			strings.Join(missing, " and "), strings.Join(missing, " "))
	}
}

// Web is nginx and fcgiwrap serving one device over HTTP on 127.0.0.1.
//
//	/git/...     gitmesh http-backend, users checked by gitmesh http-auth (tokens)
//	/open/...    gitmesh http-backend with no authentication (no REMOTE_USER)
//	/plain/...   git's own http-backend on the device's repo root (the bench's baseline)
type Web struct {
	Dir      string
	Port     int
	TLSPort  int    // 0 unless TLS was asked for
	CA       string // the throwaway certificate, for GIT_SSL_CAINFO
	ErrorLog string
	dev      *Device
	procs    []*exec.Cmd
}

// WebOptions shape the server.
type WebOptions struct {
	TLS bool
}

// StartWeb starts nginx and fcgiwrap for d; both die with the test.
func (d *Device) StartWeb(t testing.TB, o WebOptions) *Web {
	t.Helper()
	RequireNginx(t)
	dir := filepath.Join(d.c.Dir, d.Name, "web")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	w := &Web{Dir: dir, dev: d, ErrorLog: filepath.Join(dir, "error.log")}
	var err error
	if w.Port, err = FreePort(); err != nil {
		t.Fatal(err)
	}
	fport, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	gitCore, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	home := filepath.Join(dir, "home")
	os.MkdirAll(home, 0o755)
	scripts := map[string]string{
		"http-backend": fmt.Sprintf("#!/bin/sh\nexport PATH=%q HOME=%q\nexec %q --config %q http-backend\n", os.Getenv("PATH"), home, bin, d.Config),
		"http-auth":    fmt.Sprintf("#!/bin/sh\nexport PATH=%q HOME=%q\nexec %q --config %q http-auth\n", os.Getenv("PATH"), home, bin, d.Config),
		"git-http-backend": fmt.Sprintf("#!/bin/sh\nexport PATH=%q HOME=%q GIT_PROJECT_ROOT=%q GIT_HTTP_EXPORT_ALL=1 GIT_CONFIG_NOSYSTEM=1\nexec %q\n",
			os.Getenv("PATH"), home, d.Root, filepath.Join(strings.TrimSpace(string(gitCore)), "git-http-backend")),
	}
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tls := ""
	if o.TLS {
		if w.TLSPort, err = FreePort(); err != nil {
			t.Fatal(err)
		}
		w.CA = filepath.Join(dir, "cert.pem")
		key := filepath.Join(dir, "key.pem")
		out, err := exec.Command("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
			"-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
			"-keyout", key, "-out", w.CA).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl req (apt-get install openssl): %v: %s", err, out)
		}
		tls = fmt.Sprintf("listen 127.0.0.1:%d ssl;\n    ssl_certificate %s;\n    ssl_certificate_key %s;\n", w.TLSPort, w.CA, key)
	}
	user := ""
	if os.Getuid() == 0 {
		user = "user root;" // workers read the test's private directories
	}
	fcgi := fmt.Sprintf("127.0.0.1:%d", fport)
	backend := func(script, remoteUser string) string {
		return fmt.Sprintf(`fastcgi_pass %s;
      fastcgi_param QUERY_STRING $query_string;
      fastcgi_param REQUEST_METHOD $request_method;
      fastcgi_param CONTENT_TYPE $content_type;
      fastcgi_param CONTENT_LENGTH $content_length;
      fastcgi_param GATEWAY_INTERFACE CGI/1.1;
      fastcgi_param SERVER_PROTOCOL $server_protocol;
      fastcgi_param REMOTE_ADDR $remote_addr;
      fastcgi_param SCRIPT_FILENAME %s;
      fastcgi_param PATH_INFO $1;
      fastcgi_param REMOTE_USER %s;
      fastcgi_param HTTP_AUTHORIZATION "";
      fastcgi_request_buffering off;
      fastcgi_buffering off;
      fastcgi_read_timeout 600s;`, fcgi, filepath.Join(dir, script), remoteUser)
	}
	conf := fmt.Sprintf(`%s
worker_processes 1;
pid %s/nginx.pid;
error_log %s info;
events { worker_connections 256; }
http {
  access_log %s/access.log;
  client_body_temp_path %s/tmp-body;
  fastcgi_temp_path %s/tmp-fastcgi;
  proxy_temp_path %s/tmp-proxy;
  uwsgi_temp_path %s/tmp-uwsgi;
  scgi_temp_path %s/tmp-scgi;
  server {
    listen 127.0.0.1:%d;
    %s
    client_max_body_size 0;
    client_body_timeout 20s;
    location = /_gitmesh_auth {
      internal;
      fastcgi_pass %s;
      fastcgi_param REQUEST_METHOD $request_method;
      fastcgi_param GATEWAY_INTERFACE CGI/1.1;
      fastcgi_param SCRIPT_FILENAME %s;
      fastcgi_param HTTP_AUTHORIZATION $http_authorization;
      fastcgi_param CONTENT_LENGTH "";
      fastcgi_pass_request_body off;
    }
    location ~ ^/git(/.*)$ {
      auth_request /_gitmesh_auth;
      auth_request_set $gitmesh_user $upstream_http_x_gitmesh_user;
      %s
    }
    location ~ ^/open(/.*)$ {
      %s
    }
    location ~ ^/plain(/.*)$ {
      %s
    }
  }
}
`, user, dir, w.ErrorLog, dir, dir, dir, dir, dir, dir, w.Port, tls, fcgi, filepath.Join(dir, "http-auth"),
		backend("http-backend", "$gitmesh_user"), backend("http-backend", `""`), backend("git-http-backend", `""`))
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	fcgiLog, err := os.Create(filepath.Join(dir, "fcgiwrap.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fcgiLog.Close() })
	fw := exec.Command(FCGIWrap, "-c", "8", "-s", "tcp:"+fcgi)
	fw.Stdout, fw.Stderr = fcgiLog, fcgiLog
	ng := exec.Command(Nginx, "-p", dir+"/", "-c", confPath, "-e", w.ErrorLog, "-g", "daemon off;")
	ng.Stdout, ng.Stderr = fcgiLog, fcgiLog
	for _, cmd := range []*exec.Cmd{fw, ng} {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if _, err := startTied(cmd); err != nil {
			t.Fatalf("start %s: %v", cmd.Path, err)
		}
		w.procs = append(w.procs, cmd)
		pgid := cmd.Process.Pid
		t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	}
	for _, addr := range []string{fcgi, fmt.Sprintf("127.0.0.1:%d", w.Port)} {
		if err := waitListening(addr, 10*time.Second); err != nil {
			log, _ := os.ReadFile(w.ErrorLog)
			flog, _ := os.ReadFile(fcgiLog.Name())
			t.Fatalf("web server on %s: %v\n%s\n%s", addr, err, log, flog)
		}
	}
	return w
}

func waitListening(addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening after %s: %v", limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URL is repo's address on this server under prefix ("git", "open",
// "plain"), with user and password in it when user is not "".
func (w *Web) URL(prefix, user, password, repo string) string {
	cred := ""
	if user != "" {
		cred = user + ":" + password + "@"
	}
	return fmt.Sprintf("http://%s127.0.0.1:%d/%s/%s.git", cred, w.Port, prefix, repo)
}

// TLSURL is URL over https.
func (w *Web) TLSURL(prefix, user, password, repo string) string {
	cred := ""
	if user != "" {
		cred = user + ":" + password + "@"
	}
	return fmt.Sprintf("https://%s127.0.0.1:%d/%s/%s.git", cred, w.TLSPort, prefix, repo)
}

// Base is the server's root URL.
func (w *Web) Base() string { return fmt.Sprintf("http://127.0.0.1:%d", w.Port) }

// Git runs a git client against the web server (no SSH), with env added.
func (w *Web) Git(dir string, env []string, args ...string) Result {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(append(GitEnv(w.dev.c.Dir), "GIT_TERMINAL_PROMPT=0"), env...)
	return run(cmd)
}

// Token makes an HTTP token for user and returns it.
func (c *Cluster) Token(user string, extra ...string) string {
	c.T.Helper()
	out := strings.TrimSpace(c.MustAdmin(append([]string{"token", "add", user}, extra...)...))
	if out == "" || strings.Contains(out, "\n") {
		c.T.Fatalf("token add %s printed %q", user, out)
	}
	return out
}
