package httpgit

import (
	"encoding/base64"
	"fmt"
	"io"
	"strings"
)

// UserHeader is the header http-auth names the user in; nginx's
// auth_request_set takes it as $upstream_http_x_gitmesh_user.
const UserHeader = "X-Gitmesh-User"

// Basic reads "Basic base64(user:secret)" from an Authorization header.
func Basic(authz string) (user, secret string, ok bool) {
	scheme, value, found := strings.Cut(strings.TrimSpace(authz), " ")
	if !found || !strings.EqualFold(scheme, "Basic") || len(value) > 1024 {
		return "", "", false
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
	if err != nil {
		return "", "", false
	}
	user, secret, ok = strings.Cut(string(b), ":")
	if !ok || user == "" || secret == "" || strings.ContainsFunc(user, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		return "", "", false
	}
	return user, secret, true
}

// Allow answers an auth_request check: 200, naming the user.
func Allow(out io.Writer, user string) {
	fmt.Fprintf(out, "Status: 200 OK\r\n%s: %s\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n", UserHeader, user)
}

// Deny answers an auth_request check with 401 and a Basic challenge,
// which nginx passes on to the client.
func Deny(out io.Writer) {
	NewResponse(out).Fail(401, "authentication required: give your user name and a token from 'gitmesh token add'")
}
