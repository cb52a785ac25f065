package registryapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mooring-dev/mooring/content/errdef"
)

// Policy decides what users may do in the registry.
type Policy interface {
	// Allowed returns the actions of s that user (empty: anonymous) may
	// do. For a repository scope, push implies pull.
	Allowed(ctx context.Context, user string, s Scope) ([]string, error)
}

// Login checks a username and password presented from client (an
// address) over HTTP Basic; a wrong pair is an error wrapping
// errdef.ErrUnauthenticated.
type Login func(ctx context.Context, client, user, password string) error

// TokenAuth is the Authenticator of the Docker token authentication flow
// (distribution's "Token Authentication Specification"): a request without
// the access it needs is answered 401 with
//
//	WWW-Authenticate: Bearer realm="…/token/",service="…",scope="repository:<name>:pull,push"
//
// and the client fetches a token from the token endpoint (ServeHTTP,
// mounted at /token/ by the registry handler), with HTTP Basic credentials
// or none, and retries with it. HTTP Basic credentials sent to the registry
// itself stay accepted. Anonymous requests get what Policy allows the
// anonymous user: pulls of public distributions are served without a
// token round trip.
type TokenAuth struct {
	Tokens *Tokens
	Policy Policy
	Login  Login
	// Realm is the token endpoint's URL. Default: the request's scheme and
	// host with the path /token/.
	Realm string
	// Admin reports whether user may read everything, which a mount
	// without a source repository needs; nil: nobody may.
	Admin func(ctx context.Context, user string) (bool, error)
}

// MayMount implements MountChecker: the user of the request must be
// allowed to pull from, or be an administrator when from is empty.
func (ta *TokenAuth) MayMount(r *http.Request, from string) bool {
	user := User(r.Context())
	if from == "" {
		ok, err := false, error(nil)
		if ta.Admin != nil {
			ok, err = ta.Admin(r.Context(), user)
		}
		return ok && err == nil
	}
	allowed, err := ta.Policy.Allowed(r.Context(), user, Scope{Type: "repository", Name: from, Actions: []string{ActionPull}})
	return err == nil && slices.Contains(allowed, ActionPull)
}

// challengeError is a 401 carrying the WWW-Authenticate header to send.
type challengeError struct {
	header string
	err    error
}

func (e *challengeError) Error() string { return e.err.Error() }
func (e *challengeError) Unwrap() error { return e.err }

func (ta *TokenAuth) realm(r *http.Request) string {
	if ta.Realm != "" {
		return ta.Realm
	}
	scheme := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/token/"
}

// challenge answers 401 with a Bearer challenge naming the scope a needs.
func (ta *TokenAuth) challenge(r *http.Request, a Access, cause error, insufficient bool) error {
	h := fmt.Sprintf(`Bearer realm=%q,service=%q`, ta.realm(r), ta.Tokens.Service())
	if a.Action != "" {
		h += fmt.Sprintf(`,scope=%q`, scopeOf(a).String())
	}
	if insufficient {
		h += `,error="insufficient_scope"`
	}
	if !errors.Is(cause, errdef.ErrUnauthenticated) {
		cause = errdef.New(errdef.ErrUnauthorized, "%v", cause)
	}
	return &challengeError{header: h, err: cause}
}

// need is the action a request's scope must grant.
func need(a Access) (typ, action string) {
	if a.Action == "catalog" {
		return "registry", "*"
	}
	return "repository", a.Action
}

// Authenticate implements Authenticator.
func (ta *TokenAuth) Authenticate(r *http.Request, a Access) error {
	typ, action := need(a)
	if raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		claims, err := ta.Tokens.Verify(strings.TrimSpace(raw))
		if err != nil {
			return ta.challenge(r, a, err, false)
		}
		if a.Action == "" || claims.allows(typ, a.Name, action) {
			SetUser(r, claims.Subject)
			return nil
		}
		if claims.Subject == "" {
			// An anonymous token: the client had no credentials to give.
			return ta.challenge(r, a, errdef.New(errdef.ErrUnauthorized, "credentials are needed to %s %s, and none were given (podman login, docker login, or --creds user:password)", a.Action, a.Name), true)
		}
		return ta.challenge(r, a, errdef.New(errdef.ErrUnauthorized, "the token does not grant %s", scopeOf(a)), true)
	}
	user, err := ta.basicUser(r)
	if err != nil {
		return ta.challenge(r, a, err, false)
	}
	SetUser(r, user)
	if a.Action == "" {
		if user == "" {
			return ta.challenge(r, a, errdef.New(errdef.ErrUnauthorized, "authentication required"), false)
		}
		return nil
	}
	allowed, err := ta.Policy.Allowed(r.Context(), user, scopeOf(a))
	if err != nil {
		return err
	}
	if slices.Contains(allowed, action) || slices.Contains(allowed, "*") {
		return nil
	}
	if user == "" {
		return ta.challenge(r, a, errdef.New(errdef.ErrUnauthorized, "credentials are needed to %s %s, and none were given (podman login, docker login, or --creds user:password)", a.Action, a.Name), false)
	}
	return errdef.New(errdef.ErrRegistryDenied, "%s may not %s %s", user, a.Action, a.Name)
}

// basicUser returns the user of a request's HTTP Basic credentials, "" for
// none or empty ones ("Basic Og==", which some clients send when they
// have none), after checking the password.
func (ta *TokenAuth) basicUser(r *http.Request) (string, error) {
	user, pass, ok := r.BasicAuth()
	if !ok || user == "" && pass == "" {
		return "", nil
	}
	client, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		client = r.RemoteAddr
	}
	if err := ta.Login(r.Context(), client, user, pass); err != nil {
		return "", err
	}
	return user, nil
}

// tokenResponse is the token endpoint's answer (token specification,
// "Token Response Fields").
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// ServeToken is the token endpoint: GET /token/?service=…&scope=…, with
// HTTP Basic credentials or none. The token grants, of each scope asked
// for, the actions Policy allows the user (push implies pull); asking for
// more is not an error, the token grants less.
func (ta *TokenAuth) ServeToken(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return errdef.New(errdef.ErrRegistryUnsupported, "the token endpoint takes GET")
	}
	q := r.URL.Query()
	if svc := q.Get("service"); svc != "" && svc != ta.Tokens.Service() {
		return errdef.New(errdef.ErrInvalid, "service %q is not %q", svc, ta.Tokens.Service())
	}
	user, err := ta.basicUser(r)
	if err != nil {
		return err
	}
	var granted []Scope
	for _, param := range q["scope"] {
		for one := range strings.FieldsSeq(param) {
			s, err := ParseScope(one)
			if err != nil {
				return err
			}
			g, err := ta.grant(r.Context(), user, s)
			if err != nil {
				return err
			}
			if len(g.Actions) > 0 {
				granted = append(granted, g)
			}
		}
	}
	token, issued, expires, err := ta.Tokens.Issue(user, granted)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusOK, tokenResponse{Token: token, AccessToken: token,
		ExpiresIn: int(expires.Sub(issued) / time.Second), IssuedAt: issued.Format(time.RFC3339)})
}

// grant returns the part of s that user may have.
func (ta *TokenAuth) grant(ctx context.Context, user string, s Scope) (Scope, error) {
	allowed, err := ta.Policy.Allowed(ctx, user, s)
	if err != nil {
		return Scope{}, err
	}
	if slices.Contains(allowed, ActionPush) && !slices.Contains(allowed, ActionPull) {
		allowed = append(allowed, ActionPull)
	}
	g := Scope{Type: s.Type, Name: s.Name, Actions: []string{}}
	for _, a := range s.Actions {
		if slices.Contains(allowed, a) || slices.Contains(allowed, "*") {
			g.Actions = append(g.Actions, a)
		}
	}
	return g, nil
}

// Visible returns the names of names the request's user may pull
// (CatalogFilter).
func (ta *TokenAuth) Visible(r *http.Request, names []string) ([]string, error) {
	out := names[:0:0]
	for _, n := range names {
		allowed, err := ta.Policy.Allowed(r.Context(), User(r.Context()), Scope{Type: "repository", Name: n, Actions: []string{ActionPull}})
		if err != nil {
			return nil, err
		}
		if slices.Contains(allowed, ActionPull) {
			out = append(out, n)
		}
	}
	return out, nil
}
