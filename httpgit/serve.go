package httpgit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"gitmesh/config"
	"gitmesh/gitexec"
	"gitmesh/serve"
)

// Refused answers err, found before git started: a push whose client
// reads a side band hears the sentence there; anything else gets status
// and the sentence as text/plain, which git shows for info/refs.
func Refused(resp *Response, status int, msg string, err error) {
	var sb *inBandError
	if errors.As(err, &sb) && resp.FailInBand(sb.contentType, sb.told, msg) {
		return
	}
	resp.Fail(status, msg)
}

// inBandError marks a refusal of a push whose client reads a side band.
type inBandError struct {
	error
	contentType string
	told        []string // lines told before the refusal (a lock wait)
}

func (e *inBandError) Unwrap() error { return e.error }

// Options are what the command line decides for the front door.
type Options struct {
	Log zerolog.Logger
	// Anonymous is the gitmesh user a request without REMOTE_USER reads
	// as (http_anonymous_user); "" answers such a request 401.
	Anonymous string
	// PassedOn: a device holding no copy passed the request on to this
	// one (PassedOnCGI); it is never passed on again.
	PassedOn bool
}

// MaxUploadRequest bounds an inflated fetch request (wants and haves),
// as git http-backend's http.maxRequestBuffer does.
const MaxUploadRequest = 10 << 20

// Serve answers one CGI request: parse, then serve's path, with git run
// for smart HTTP (--advertise-refs, --stateless-rpc). A refusal before
// git starts is returned for the caller to answer with Response.Fail.
func Serve(ctx context.Context, s config.Settings, c CGI, body io.Reader, resp *Response, o Options) error {
	route, perr := Parse(c)
	if perr != nil {
		return perr
	}
	user := c.RemoteUser
	if user == "" {
		if o.Anonymous == "" || route.Verb.IsWrite() {
			return ErrNoUser
		}
		user = o.Anonymous
	}
	environ := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_PROTOCOL=") {
			environ = append(environ, kv)
		}
	}
	if c.Protocol != "" {
		environ = append(environ, "GIT_PROTOCOL="+c.Protocol)
	}
	var err error
	log := o.Log.With().Str("door", "http").Logger()
	req := serve.Request{User: user, Cmd: gitexec.Command{Verb: route.Verb, Repo: route.Repo}, Environ: environ,
		Log: log, Advertise: route.Advertise, PassedOn: o.PassedOn}
	// On a device holding no copy, a holder's HTTP door answers it all.
	req.HTTP = &serve.HTTPHop{Out: resp.Passthrough()}
	// Over HTTP, a read's lines (a catch-up, a lock wait) cannot reach the
	// user before git's answer: they go to the log.
	req.Tell = func(format string, args ...any) {
		log.Info().Str("repo", route.Repo).Msg(fmt.Sprintf(format, args...))
	}
	svc := strings.TrimPrefix(string(route.Verb), "git-")
	band := &sideband{}
	switch {
	case route.Advertise:
		req.Run = func(dir string, env []string) error {
			if err := resp.Start("application/x-git-" + svc + "-advertisement"); err != nil {
				return err
			}
			if !v2(c.Protocol) {
				line := "# service=git-" + svc + "\n"
				fmt.Fprintf(resp, "%04x%s0000", len(line)+4, line)
			}
			return gitexec.ExecFlags(route.Verb, dir, env, []string{gitexec.StatelessRPC, gitexec.AdvertiseRefs})
		}
	case !route.Verb.IsWrite():
		in, err := inflate(c, body)
		if err != nil {
			return err
		}
		req.HTTP.Body = io.LimitReader(in, MaxUploadRequest)
		req.Run = func(dir string, env []string) error {
			if err := resp.Start("application/x-git-upload-pack-result"); err != nil {
				return err
			}
			if in == body {
				return gitexec.ExecFlags(route.Verb, dir, env, []string{gitexec.StatelessRPC})
			}
			return runInflated(route.Verb, dir, env, in, resp)
		}
	default:
		in, err := inflate(c, body)
		if err != nil {
			return err
		}
		br := bufio.NewReaderSize(in, 65536)
		band = &sideband{out: resp, on: asksSideband(br)}
		req.HTTP.Body = br
		resp.Lazy("application/x-git-receive-pack-result")
		req.Client = br
		req.Tell = func(format string, args ...any) {
			line := fmt.Sprintf(format, args...)
			if !band.Tell(line) {
				log.Info().Str("repo", route.Repo).Msg(line)
			}
		}
		req.Receive = func(dir string, env, gitConfig []string, stdin *os.File) (*gitexec.Service, error) {
			return gitexec.StartServiceIO(route.Verb, dir, env, gitConfig, []string{gitexec.StatelessRPC}, stdin, band)
		}
	}
	err = serve.Handle(ctx, s, req)
	if err != nil && req.Client != nil && band.on {
		return &inBandError{error: err, contentType: "application/x-git-receive-pack-result", told: band.takePending()}
	}
	return err
}

// v2 reports whether the client asked for protocol v2.
func v2(protocol string) bool {
	for _, p := range strings.Split(protocol, ":") {
		if p == "version=2" {
			return true
		}
	}
	return false
}

// inflate is the request body as git sent it before compressing it.
func inflate(c CGI, body io.Reader) (io.Reader, error) {
	switch e := strings.ToLower(strings.TrimSpace(c.ContentEncoding)); e {
	case "", "identity":
		return body, nil
	case "gzip", "x-gzip":
		z, err := gzip.NewReader(body)
		if err != nil {
			return nil, &StatusError{Code: http.StatusBadRequest, Msg: "the request body is not valid gzip"}
		}
		return z, nil
	}
	return nil, &StatusError{Code: http.StatusUnsupportedMediaType, Msg: "the request's content encoding is not gzip"}
}

// runInflated runs a fetch whose request came gzip-compressed: git reads
// it inflated (in), at most MaxUploadRequest bytes of it.
func runInflated(verb gitexec.Verb, dir string, env []string, in io.Reader, out io.Writer) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	svc, err := gitexec.StartServiceIO(verb, dir, env, nil, []string{gitexec.StatelessRPC}, r, out)
	r.Close()
	if err != nil {
		w.Close()
		return err
	}
	go func() {
		io.Copy(w, io.LimitReader(in, MaxUploadRequest))
		w.Close()
	}()
	return gitexec.ExitStatus(svc.Wait())
}

// asksSideband peeks at a push's first command line ("old new ref\0caps")
// for side-band capabilities, leaving it to be read.
func asksSideband(br *bufio.Reader) bool {
	hdr, err := br.Peek(4)
	if err != nil {
		return false
	}
	n, err := strconv.ParseUint(string(hdr), 16, 16)
	if err != nil || n <= 4 {
		return false
	}
	line, err := br.Peek(int(n))
	if err != nil {
		return false
	}
	_, caps, ok := bytes.Cut(line[4:], []byte{0})
	if !ok {
		return false
	}
	for _, c := range strings.Fields(string(caps)) {
		if c == "side-band-64k" || c == "side-band" {
			return true
		}
	}
	return false
}

// PassedOnCGI is the request a device holding no copy passed on
// (gitexec.PassOnHTTPVerb), as this device's HTTP door reads it: the
// body comes inflated.
func PassedOnCGI(cmd gitexec.Command) CGI {
	c := CGI{RemoteUser: cmd.User, Protocol: cmd.Protocol}
	if cmd.HTTP == gitexec.HTTPAdvertise {
		c.Method, c.PathInfo, c.Query = http.MethodGet, "/"+cmd.Repo+".git/info/refs", "service="+string(cmd.Verb)
		return c
	}
	c.Method, c.PathInfo = http.MethodPost, "/"+cmd.Repo+".git/"+string(cmd.Verb)
	c.ContentType = "application/x-" + string(cmd.Verb) + "-request"
	return c
}
