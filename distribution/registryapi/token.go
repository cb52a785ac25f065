package registryapi

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mooring-dev/mooring/content/errdef"
)

// Scope is one scope of the Docker token specification: a resource type
// ("repository" or "registry"), its name ("team/app", "catalog") and
// actions ("pull", "push", "delete", "*").
type Scope struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// ParseScope reads "repository:team/app:pull,push" or
// "registry:catalog:*". The name may hold ':' (a port in the name of a
// pull-through path): the type is before the first colon, the actions
// after the last.
func ParseScope(s string) (Scope, error) {
	typ, rest, ok1 := strings.Cut(s, ":")
	i := strings.LastIndex(rest, ":")
	if !ok1 || i <= 0 || typ == "" {
		return Scope{}, errdef.New(errdef.ErrInvalid, "scope %q is not type:name:actions", s)
	}
	sc := Scope{Type: typ, Name: rest[:i]}
	for a := range strings.SplitSeq(rest[i+1:], ",") {
		if a = strings.TrimSpace(a); a != "" && !slices.Contains(sc.Actions, a) {
			sc.Actions = append(sc.Actions, a)
		}
	}
	return sc, nil
}

// String returns the scope as the token specification writes it.
func (s Scope) String() string { return s.Type + ":" + s.Name + ":" + strings.Join(s.Actions, ",") }

// scopeOf is the scope a registry request needs.
func scopeOf(a Access) Scope {
	switch a.Action {
	case "catalog":
		return Scope{Type: "registry", Name: "catalog", Actions: []string{"*"}}
	case ActionPush:
		return Scope{Type: "repository", Name: a.Name, Actions: []string{ActionPull, ActionPush}}
	}
	return Scope{Type: "repository", Name: a.Name, Actions: []string{a.Action}}
}

// Claims are the claims of a registry token: the registered ones and the
// access it grants.
type Claims struct {
	jwt.RegisteredClaims
	Access []Scope `json:"access"`
}

// allows reports whether the claims grant action on repository name.
func (c *Claims) allows(typ, name, action string) bool {
	for _, s := range c.Access {
		if s.Type == typ && s.Name == name && (slices.Contains(s.Actions, action) || slices.Contains(s.Actions, "*")) {
			return true
		}
	}
	return false
}

// Tokens issues and verifies registry tokens: JWTs signed with an ECDSA
// P-256 key (ES256), as CNCF distribution's token authentication reads
// them. It is safe for concurrent use.
type Tokens struct {
	key     *ecdsa.PrivateKey
	kid     string
	issuer  string
	service string
	ttl     time.Duration

	// verified remembers tokens whose signature checked out, so that a
	// client pulling with one token pays for one ECDSA verification, not
	// one per request; an entry is trusted until the token expires.
	mu       sync.Mutex
	verified map[[32]byte]*Claims
}

// DefaultTokenTTL is how long an issued token is valid.
const DefaultTokenTTL = 5 * time.Minute

// NewTokens returns Tokens signing with key (an *ecdsa.PrivateKey on
// P-256), naming issuer in iss and service in aud; ttl 0 means
// DefaultTokenTTL.
func NewTokens(key crypto.Signer, issuer, service string, ttl time.Duration) (*Tokens, error) {
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve.Params().BitSize != 256 {
		return nil, errdef.New(errdef.ErrInvalid, "the token signing key must be an ECDSA P-256 key")
	}
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	return &Tokens{key: ec, kid: keyID(&ec.PublicKey), issuer: issuer, service: service, ttl: ttl, verified: map[[32]byte]*Claims{}}, nil
}

// keyID is the libtrust-style key id of a public key, which CNCF
// distribution puts in the kid header.
func keyID(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	b := strings.TrimRight(base32.StdEncoding.EncodeToString(sum[:30]), "=")
	var parts []string
	for i := 0; i < len(b); i += 4 {
		parts = append(parts, b[i:min(i+4, len(b))])
	}
	return strings.Join(parts, ":")
}

// Service is the service name tokens are issued for (their audience).
func (t *Tokens) Service() string { return t.service }

// Issue signs a token for user (empty: anonymous) granting access; it
// returns the token and when it was issued and expires.
func (t *Tokens) Issue(user string, access []Scope) (token string, issued, expires time.Time, err error) {
	issued = time.Now().UTC().Truncate(time.Second)
	expires = issued.Add(t.ttl)
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", issued, expires, err
	}
	if access == nil {
		access = []Scope{}
	}
	claims := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.issuer,
			Subject:   user,
			Audience:  jwt.ClaimStrings{t.service},
			ExpiresAt: jwt.NewNumericDate(expires),
			NotBefore: jwt.NewNumericDate(issued.Add(-time.Second)),
			IssuedAt:  jwt.NewNumericDate(issued),
			ID:        hex.EncodeToString(jti[:]),
		},
		Access: access,
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = t.kid
	token, err = tok.SignedString(t.key)
	return token, issued, expires, err
}

// errBadToken is the answer to every token that does not verify.
var errBadToken = errdef.New(errdef.ErrUnauthorized, "invalid or expired token")

// Verify checks a token's signature (ES256 with this key only: alg none
// or any other algorithm is refused), issuer, audience and validity window,
// and returns its claims. Any failure is errdef.ErrUnauthenticated.
func (t *Tokens) Verify(raw string) (*Claims, error) {
	sum := sha256.Sum256([]byte(raw))
	now := time.Now()
	t.mu.Lock()
	c, ok := t.verified[sum]
	t.mu.Unlock()
	if ok && now.Before(c.ExpiresAt.Time) && !now.Before(c.NotBefore.Time.Add(-5*time.Second)) {
		return c, nil
	}
	c, err := t.verify(raw)
	if err != nil {
		return nil, err
	}
	if c.NotBefore != nil {
		t.mu.Lock()
		if len(t.verified) >= 10000 {
			clear(t.verified)
		}
		t.verified[sum] = c
		t.mu.Unlock()
	}
	return c, nil
}

func (t *Tokens) verify(raw string) (*Claims, error) {
	claims := &Claims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(tok *jwt.Token) (any, error) {
		return &t.key.PublicKey, nil
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithIssuer(t.issuer),
		jwt.WithAudience(t.service),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(5*time.Second),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadToken, errors.Unwrap(err))
	}
	return claims, nil
}
