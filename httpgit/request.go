// Package httpgit is the HTTP front door: one CGI request (RFC 3875), run
// by a web server as it would run git's own http-backend (nginx with
// fcgiwrap, Apache with mod_cgi), parsed into serve's Request and answered
// in HTTP's terms (status codes, git's smart HTTP content types, messages
// in a side band git shows). It also checks Basic credentials against
// gitmesh's tokens for a web server without a user store of its own.
// It knows requests, headers and status codes, not advisory locks,
// versions or the database: after parsing, serve takes the same path as
// for SSH.
package httpgit

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"gitmesh/gitexec"
)

// CGI is what the web server tells gitmesh about one request, read once
// from the environment (RFC 3875 meta-variables).
type CGI struct {
	Method          string // REQUEST_METHOD
	PathInfo        string // PATH_INFO: /team/app.git/info/refs
	Query           string // QUERY_STRING
	ContentType     string // CONTENT_TYPE
	ContentEncoding string // HTTP_CONTENT_ENCODING (gzip)
	Protocol        string // HTTP_GIT_PROTOCOL: git's Git-Protocol header
	RemoteUser      string // REMOTE_USER: who the web server authenticated
	Authorization   string // HTTP_AUTHORIZATION: for http-auth only
}

// FromEnv reads a CGI request from environ.
func FromEnv(environ []string) CGI {
	get := func(name string) string {
		for _, kv := range environ {
			if k, v, ok := strings.Cut(kv, "="); ok && k == name {
				return v
			}
		}
		return ""
	}
	return CGI{Method: get("REQUEST_METHOD"), PathInfo: get("PATH_INFO"), Query: get("QUERY_STRING"),
		ContentType: get("CONTENT_TYPE"), ContentEncoding: get("HTTP_CONTENT_ENCODING"),
		Protocol: get("HTTP_GIT_PROTOCOL"), RemoteUser: get("REMOTE_USER"), Authorization: get("HTTP_AUTHORIZATION")}
}

// Route is a parsed smart HTTP request: which service, on which
// repository, and whether it only asks for the refs.
type Route struct {
	Verb      gitexec.Verb
	Repo      string // normalised, as serve takes it
	Advertise bool   // GET info/refs?service=...
}

// StatusError is a refusal with its HTTP status and one sentence for the
// user (git shows a text/plain body of a refused info/refs).
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string { return e.Msg }

// ErrNoUser: the web server named no user and anonymous reads are off.
var ErrNoUser = &StatusError{Code: http.StatusUnauthorized, Msg: "authentication required: give a user name and token"}

// MaxPath bounds PATH_INFO; a repository name is at most
// gitexec.MaxNameLen bytes, and the longest suffix is short.
const MaxPath = 1024

// services are the endpoints of git's smart HTTP, the whole allow-list.
var services = map[string]gitexec.Verb{
	"git-upload-pack":  gitexec.UploadPack,
	"git-receive-pack": gitexec.ReceivePack,
}

var errDumb = &StatusError{Code: http.StatusForbidden,
	Msg: "gitmesh serves git's smart HTTP only (the dumb protocol is not served); use git 1.6.6 or newer"}

// Parse turns a request into a Route. Anything but git's smart HTTP
// endpoints is refused before any repository is looked up, so the answer
// tells nothing about which repositories exist.
func Parse(c CGI) (Route, error) {
	p := c.PathInfo
	if len(p) > MaxPath {
		return Route{}, &StatusError{Code: http.StatusRequestURITooLong, Msg: fmt.Sprintf("the path is longer than %d bytes", MaxPath)}
	}
	if strings.IndexFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return Route{}, &StatusError{Code: http.StatusBadRequest, Msg: "the path contains a control character"}
	}
	if !strings.HasPrefix(p, "/") {
		return Route{}, &StatusError{Code: http.StatusNotFound, Msg: "no repository named in the path; use a URL such as https://host/git/team/app.git"}
	}
	repoPath, rest, ok := cutService(p)
	if !ok {
		if strings.HasSuffix(p, "/git-upload-archive") {
			return Route{}, &StatusError{Code: http.StatusForbidden, Msg: "git does not serve archives over HTTP; use git archive --remote over SSH"}
		}
		return Route{}, errDumb
	}
	var r Route
	switch {
	case rest == "info/refs":
		if c.Method != http.MethodGet && c.Method != http.MethodHead {
			return Route{}, &StatusError{Code: http.StatusMethodNotAllowed, Msg: "info/refs is read with GET"}
		}
		q, err := url.ParseQuery(c.Query)
		svc := q.Get("service")
		if err != nil || svc == "" {
			return Route{}, errDumb
		}
		verb, ok := services[svc]
		if !ok {
			return Route{}, &StatusError{Code: http.StatusForbidden, Msg: "unknown service; only git-upload-pack and git-receive-pack are served"}
		}
		r = Route{Verb: verb, Advertise: true}
	default:
		verb := services[rest]
		if c.Method != http.MethodPost {
			return Route{}, &StatusError{Code: http.StatusMethodNotAllowed, Msg: rest + " takes a POST"}
		}
		if want := "application/x-" + rest + "-request"; c.ContentType != want {
			return Route{}, &StatusError{Code: http.StatusUnsupportedMediaType, Msg: "the request's content type is not " + want}
		}
		r = Route{Verb: verb}
	}
	name, err := gitexec.NameFromPath(repoPath)
	if err != nil {
		// The name rules' own sentence, as over SSH.
		return Route{}, &StatusError{Code: http.StatusBadRequest, Msg: err.Error()}
	}
	r.Repo = name
	return r, nil
}

// cutService splits /team/app.git/info/refs into the repository part and
// the endpoint ("info/refs", "git-upload-pack", "git-receive-pack").
func cutService(p string) (repo, endpoint string, ok bool) {
	for _, e := range []string{"/info/refs", "/git-upload-pack", "/git-receive-pack"} {
		if r, found := strings.CutSuffix(p, e); found {
			return r, e[1:], true
		}
	}
	return "", "", false
}

// IsStatus reports err's status, if it is a StatusError.
func IsStatus(err error) (*StatusError, bool) {
	var se *StatusError
	return se, errors.As(err, &se)
}
