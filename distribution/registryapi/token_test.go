package registryapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mooring-dev/mooring"
	"github.com/mooring-dev/mooring/distribution/registryapi"
)

// tokenEnv is a registry with token authentication over one user, alice.
type tokenEnv struct {
	t      *testing.T
	srv    *httptest.Server
	tokens *registryapi.Tokens
	key    *ecdsa.PrivateKey
}

func newTokenEnv(t *testing.T) *tokenEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(key)
	keyFile := filepath.Join(dir, "token.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := mooring.Open(ctx, filepath.Join(dir, "db"), filepath.Join(dir, "blobs"), mooring.Options{TokenKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.Users.SetPassword(ctx, "alice", "alice-password"); err != nil {
		t.Fatal(err)
	}
	ta, err := m.TokenAuth(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.RegistryHandler(registryapi.Options{Auth: ta}))
	t.Cleanup(srv.Close)
	return &tokenEnv{t: t, srv: srv, tokens: ta.Tokens, key: key}
}

func (e *tokenEnv) do(method, path string, header ...string) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

// token asks the token endpoint for scopes, as user (empty: anonymous).
func (e *tokenEnv) token(user, pass string, scopes ...string) (string, *registryapi.Claims, int) {
	e.t.Helper()
	path := "/token/?service=mooring"
	for _, s := range scopes {
		path += "&scope=" + s
	}
	var h []string
	if user != "" {
		h = []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}
	}
	resp := e.do("GET", path, h...)
	defer resp.Body.Close()
	var body struct {
		Token     string `json:"token"`
		Access    string `json:"access_token"`
		ExpiresIn int    `json:"expires_in"`
		IssuedAt  string `json:"issued_at"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusOK {
		return "", nil, resp.StatusCode
	}
	if body.Token == "" || body.Access != body.Token || body.ExpiresIn <= 0 || body.IssuedAt == "" {
		e.t.Errorf("token response %+v lacks token, access_token, expires_in or issued_at", body)
	}
	claims, err := e.tokens.Verify(body.Token)
	if err != nil {
		e.t.Fatalf("the endpoint's own token does not verify: %v", err)
	}
	return body.Token, claims, resp.StatusCode
}

func granted(c *registryapi.Claims, name string) []string {
	for _, s := range c.Access {
		if s.Name == name {
			return s.Actions
		}
	}
	return nil
}

// TestTokenEndpoint: granted access is what was asked for intersected
// with what the user may do; push implies pull; wrong credentials are
// 401; empty Basic credentials are anonymous.
func TestTokenEndpoint(t *testing.T) {
	e := newTokenEnv(t)
	_, c, _ := e.token("", "", "repository:team/app:pull,push")
	if got := granted(c, "team/app"); !slices.Equal(got, []string{"pull"}) || c.Subject != "" {
		t.Errorf("anonymous asking pull,push got %v as %q; want pull only", got, c.Subject)
	}
	_, c, _ = e.token("alice", "alice-password", "repository:team/app:push", "repository:other:pull")
	if got := granted(c, "team/app"); !slices.Equal(got, []string{"push"}) {
		t.Errorf("alice asking push got %v", got)
	}
	if c.Subject != "alice" || !slices.Equal(c.Audience, jwt.ClaimStrings{"mooring"}) || c.Issuer == "" || c.ID == "" ||
		c.ExpiresAt == nil || c.NotBefore == nil || c.IssuedAt == nil {
		t.Errorf("claims lack sub, aud, iss, jti, exp, nbf or iat: %+v", c.RegisteredClaims)
	}
	if _, _, status := e.token("alice", "wrong", "repository:team/app:pull"); status != http.StatusUnauthorized {
		t.Errorf("wrong password: %d, want 401", status)
	}
	resp := e.do("GET", "/token/?scope=repository:x:pull", "Authorization", "Basic Og==")
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("empty Basic credentials (Og==): %s, want an anonymous token", resp.Status)
	}
}

// TestBearerFlow: a push without credentials is a 401 naming the scope;
// the token for it opens the door; a token for pull only does not.
func TestBearerFlow(t *testing.T) {
	e := newTokenEnv(t)
	resp := e.do("POST", "/v2/team/app/blobs/uploads/")
	resp.Body.Close()
	ch := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(ch, `scope="repository:team/app:pull,push"`) || !strings.Contains(ch, `realm="`+e.srv.URL+`/token/"`) {
		t.Fatalf("push without credentials: %s %q", resp.Status, ch)
	}
	push, _, _ := e.token("alice", "alice-password", "repository:team/app:pull,push")
	resp = e.do("POST", "/v2/team/app/blobs/uploads/", "Authorization", "Bearer "+push)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("push with a push token: %s", resp.Status)
	}
	pull, _, _ := e.token("alice", "alice-password", "repository:team/app:pull")
	resp = e.do("POST", "/v2/team/app/blobs/uploads/", "Authorization", "Bearer "+pull)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Errorf("push with a pull token: %s %q, want 401 insufficient_scope", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	resp = e.do("POST", "/v2/team/other/blobs/uploads/", "Authorization", "Bearer "+push)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("push to another name with team/app's token: %s, want 401", resp.Status)
	}
}

// TestTokenTampering: every token that was not signed as it is, by this
// key, for this service, now, is refused with 401.
func TestTokenTampering(t *testing.T) {
	e := newTokenEnv(t)
	good, _, _ := e.token("alice", "alice-password", "repository:team/app:pull")
	parts := strings.Split(good, ".")
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sign := func(key any, method jwt.SigningMethod, mutate func(*registryapi.Claims)) string {
		c := &registryapi.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: "mooring", Subject: "alice", Audience: jwt.ClaimStrings{"mooring"},
			ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute)), NotBefore: jwt.NewNumericDate(time.Now().Add(-time.Minute)),
			IssuedAt: jwt.NewNumericDate(time.Now())}, Access: []registryapi.Scope{{Type: "repository", Name: "team/app", Actions: []string{"pull", "push"}}}}
		mutate(c)
		s, err := jwt.NewWithClaims(method, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	widened := func() string {
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		payload = []byte(strings.Replace(string(payload), `"actions":["pull"]`, `"actions":["pull","push"]`, 1))
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
	}()
	// Signed with the registry's own key and claims that verify: accepted,
	// so the refusals below are for what each case changes.
	if resp := e.do("POST", "/v2/team/app/blobs/uploads/", "Authorization", "Bearer "+sign(e.key, jwt.SigningMethodES256, func(*registryapi.Claims) {})); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("a well-formed token of the registry's key: %s", resp.Status)
	}
	for name, tok := range map[string]string{
		"bad signature":               parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])),
		"another key":                 sign(otherKey, jwt.SigningMethodES256, func(*registryapi.Claims) {}),
		"expired":                     sign(e.key, jwt.SigningMethodES256, func(c *registryapi.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour)) }),
		"not yet valid":               sign(e.key, jwt.SigningMethodES256, func(c *registryapi.Claims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour)) }),
		"wrong audience":              sign(e.key, jwt.SigningMethodES256, func(c *registryapi.Claims) { c.Audience = jwt.ClaimStrings{"elsewhere"} }),
		"scope widened after signing": widened,
		"alg none":                    sign(jwt.UnsafeAllowNoneSignatureType, jwt.SigningMethodNone, func(*registryapi.Claims) {}),
	} {
		resp := e.do("POST", "/v2/team/app/blobs/uploads/", "Authorization", "Bearer "+tok)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %s, want 401", name, resp.Status)
		}
		resp = e.do("GET", "/v2/", "Authorization", "Bearer "+tok)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s on the version check: %s, want 401", name, resp.Status)
		}
	}
}
