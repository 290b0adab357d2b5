package gitexec

import (
	"fmt"
	"net/url"
	"os/exec"
	"strings"
)

// A request that reaches a device holding no copy of its repository is
// passed on to a holder over the intracluster path as the cluster key's
// command
//
//	gitmesh-as USER PROTOCOL VERB 'REPO.git'
//
// USER is the user the device reached checked access for (the holder
// checks it again and applies its own limits), PROTOCOL the client's
// GIT_PROTOCOL ("-" for none), VERB and REPO the user's request. A
// request passed on is never passed on again.

// PassOnVerb is the cluster key's word for a user's request passed on.
const PassOnVerb = "gitmesh-as"

// PassOnHTTPVerb is the same for a smart HTTP request, which the holder's
// HTTP door answers whole (status, headers, body):
//
//	gitmesh-as-http USER PROTOCOL MODE VERB 'REPO.git'
//
// MODE is HTTPAdvertise (GET info/refs) or HTTPRPC (the POST).
const PassOnHTTPVerb = "gitmesh-as-http"

// HTTPMode says which smart HTTP request a passed-on request is ("" for
// an SSH one).
type HTTPMode string

// The two smart HTTP requests.
const (
	HTTPAdvertise HTTPMode = "advertise"
	HTTPRPC       HTTPMode = "rpc"
)

// PassOnCommand is the cluster command that passes cmd, made by user
// with GIT_PROTOCOL protocol ("" for none), on to a holder. user and
// protocol are checked as ParseClusterCommand checks them.
// cmd.HTTP chooses the HTTP form.
func PassOnCommand(user, protocol string, cmd Command) (string, error) {
	if !validUser(user) {
		return "", badCommand("user name %s cannot be passed on", quoteForUser(user))
	}
	p := "-"
	if protocol != "" {
		if !validProtocol(protocol) {
			return "", badCommand("GIT_PROTOCOL %s cannot be passed on", quoteForUser(protocol))
		}
		p = protocol
	}
	if err := ValidateName(cmd.Repo); err != nil {
		return "", err
	}
	if _, ok := verbs[string(cmd.Verb)]; !ok {
		return "", badCommand("%s cannot be passed on", quoteForUser(string(cmd.Verb)))
	}
	switch cmd.HTTP {
	case "":
		return fmt.Sprintf("%s %s %s %s '%s.git'", PassOnVerb, user, p, cmd.Verb, cmd.Repo), nil
	case HTTPAdvertise, HTTPRPC:
		if cmd.Verb == UploadArchive {
			return "", badCommand("git-upload-archive is not served over HTTP")
		}
		return fmt.Sprintf("%s %s %s %s %s '%s.git'", PassOnHTTPVerb, user, p, cmd.HTTP, cmd.Verb, cmd.Repo), nil
	}
	return "", badCommand("HTTP mode %s cannot be passed on", quoteForUser(string(cmd.HTTP)))
}

// IsPassedOnHTTP reports whether a cluster command is a smart HTTP
// request passed on (which the holder answers as its HTTP door would).
func IsPassedOnHTTP(original string) bool {
	return strings.HasPrefix(original, PassOnHTTPVerb+" ")
}

// IsPassedOn reports whether a cluster command is a user's request
// passed on (whose refusals the user reads, as from `serve USER`).
func IsPassedOn(original string) bool {
	return strings.HasPrefix(original, PassOnVerb+" ")
}

// parsePassedOn parses the words after gitmesh-as (or gitmesh-as-http,
// http): a user name, a protocol or "-", for HTTP a mode, then a user's
// command (git's verbs only).
func parsePassedOn(rest string, http bool) (Command, error) {
	user, rest, _ := strings.Cut(rest, " ")
	protocol, rest, _ := strings.Cut(rest, " ")
	var mode HTTPMode
	if http {
		var m string
		m, rest, _ = strings.Cut(rest, " ")
		if mode = HTTPMode(m); mode != HTTPAdvertise && mode != HTTPRPC {
			return Command{}, badCommand("%s needs %s or %s, not %s", PassOnHTTPVerb, HTTPAdvertise, HTTPRPC, quoteForUser(m))
		}
	}
	if !validUser(user) {
		return Command{}, badCommand("%s needs a user name, not %s", PassOnVerb, quoteForUser(user))
	}
	if protocol == "-" {
		protocol = ""
	} else if !validProtocol(protocol) {
		return Command{}, badCommand("%s needs a GIT_PROTOCOL value or -, not %s", PassOnVerb, quoteForUser(protocol))
	}
	cmd, err := parse(rest, verbs)
	if err != nil {
		return Command{}, err
	}
	if http && cmd.Verb == UploadArchive {
		return Command{}, badCommand("git-upload-archive is not served over HTTP")
	}
	cmd.User, cmd.Protocol, cmd.HTTP = user, protocol, mode
	return cmd, nil
}

// validUser is the rule of a gitmesh user name (access.ValidateName):
// 1 to 64 letters, digits, '.', '_' or '-', not starting with '.' or '-'.
func validUser(name string) bool {
	if name == "" || len(name) > 64 || name[0] == '.' || name[0] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return false
		}
	}
	return true
}

// PassOnSSH is the ssh command that sends remote (PassOnCommand) to the
// device behind the ssh:// URL base with g's ssh command (the cluster key,
// shared connections, connect_timeout): ssh's own diagnostics are
// silenced (they name addresses), the holder's stderr comes through. ssh
// exits 255 when it cannot reach or log in to the device.
func (g Git) PassOnSSH(base, remote string) (*exec.Cmd, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "ssh" || u.Host == "" {
		return nil, fmt.Errorf("not an ssh:// URL")
	}
	dest := u.Hostname()
	if u.User != nil {
		dest = u.User.Username() + "@" + dest
	}
	args := []string{"-o", "LogLevel=QUIET"}
	if p := u.Port(); p != "" {
		args = append(args, "-p", p)
	}
	args = append(args, "--", dest, remote)
	ssh := g.SSHCommand
	if ssh == "" {
		ssh = "ssh"
	}
	return exec.Command("sh", append([]string{"-c", ssh + ` "$@"`, "ssh"}, args...)...), nil
}

// SSHUnreachable is ssh's exit status when it could not reach or log in
// to the other end.
const SSHUnreachable = 255
