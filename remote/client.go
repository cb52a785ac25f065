package remote

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	orasdef "oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry"
	orasremote "oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
	"oras.land/oras-go/v2/registry/remote/retry"

	"github.com/mooring-dev/mooring/content"
	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/storage"
)

// RetryPolicy says how a sync retries. Each HTTP request is retried by the
// transport on a dropped connection, a 408, a 429 or a 5xx; each download is
// retried as a whole when its body breaks off, is truncated or does not hash
// to its digest. Waits grow exponentially from MinWait to MaxWait; a 429's
// Retry-After is honoured up to MaxRetryAfter.
type RetryPolicy struct {
	// Attempts is how many times a request or download is tried in all
	// (default 5).
	Attempts int
	// MinWait is the first wait (default 250ms); each next wait doubles.
	MinWait time.Duration
	// MaxWait caps a wait (default 10s).
	MaxWait time.Duration
	// MaxRetryAfter is the longest Retry-After a 429 may ask for (default
	// 2m); a longer one fails the request instead. It is also the longest
	// a request waits for a quota that an upstream's RateLimit headers say
	// is used up to renew.
	MaxRetryAfter time.Duration
}

// DefaultRetryPolicy is the policy of a Syncer whose Retry is the zero value.
var DefaultRetryPolicy = RetryPolicy{Attempts: 5, MinWait: 250 * time.Millisecond, MaxWait: 10 * time.Second, MaxRetryAfter: 2 * time.Minute}

func (p RetryPolicy) norm() RetryPolicy {
	d := DefaultRetryPolicy
	if p.Attempts <= 0 {
		p.Attempts = d.Attempts
	}
	if p.MinWait <= 0 {
		p.MinWait = d.MinWait
	}
	if p.MaxWait <= 0 {
		p.MaxWait = d.MaxWait
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = d.MaxRetryAfter
	}
	return p
}

// wait returns how long to wait before try attempt+1 (attempt counts from 0).
func (p RetryPolicy) wait(attempt int) time.Duration {
	w := p.MinWait << min(attempt, 20)
	if w <= 0 || w > p.MaxWait {
		w = p.MaxWait
	}
	return w
}

// Retry implements oras-go's retry.Policy for the transport. oras-go's
// default policy caps Retry-After at 3s and does not retry a connection
// closed before any response (io.EOF); this one does both.
func (p RetryPolicy) Retry(attempt int, resp *http.Response, err error) (time.Duration, error) {
	if attempt+1 >= p.Attempts {
		return -1, nil
	}
	if err != nil {
		if !transientNetError(err) {
			return -1, nil
		}
		return p.wait(attempt), nil
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		if ra, ok := retryAfter(resp.Header.Get("Retry-After")); ok {
			if ra > p.MaxRetryAfter {
				return -1, nil
			}
			return max(ra, p.MinWait), nil
		}
		return p.wait(attempt), nil
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		return p.wait(attempt), nil
	}
	return -1, nil
}

var _ retry.Policy = RetryPolicy{}

// retryAfter parses a Retry-After header: delay seconds or an HTTP date
// (RFC 9110 section 10.2.3).
func retryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}

// transientNetError reports whether a transport error may go away on retry:
// a dropped or reset connection, a timeout, a refused connection (a
// registry restarting). TLS failures (certificates, alerts, a plain-HTTP
// server), unknown hosts and cancellation do not.
func transientNetError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var alert tls.AlertError
	var recordErr tls.RecordHeaderError
	if errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) ||
		errors.As(err, &alert) || errors.As(err, &recordErr) ||
		// A TLS alert from the peer (tls.alert is unexported).
		strings.Contains(err.Error(), "remote error: tls:") {
		return false
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}

// errCorrupt marks a body that arrived whole but was not what was asked
// for: wrong digest or length. It is discarded and fetched again.
var errCorrupt = errors.New("corrupt response")

// retryable reports whether a failed download is worth trying again. HTTP
// status errors are not: the transport already retried them.
func retryable(err error) bool {
	if errors.Is(err, errCorrupt) || errors.Is(err, storage.ErrDigestMismatch) ||
		errors.Is(err, storage.ErrSizeMismatch) || errors.Is(err, content.ErrDigestMismatch) {
		return true
	}
	var er *errcode.ErrorResponse
	if errors.As(err, &er) {
		return false
	}
	// oras-go reports header and length mismatches as plain errors.
	if msg := err.Error(); strings.Contains(msg, "digest mismatch") || strings.Contains(msg, "mismatch Content-Length") {
		return true
	}
	return transientNetError(err)
}

// upstream is one remote's registry client: oras-go's repository with its
// auth client over a retrying transport configured from the remote.
type upstream struct {
	repo   *orasremote.Repository
	client *auth.Client
	policy RetryPolicy
	base   string // scheme://host
	limits *quotaTransport
}

func newUpstream(r *Remote, policy RetryPolicy) (*upstream, error) {
	u, err := url.Parse(r.URL)
	if err != nil {
		return nil, &errdef.FieldError{Field: "url", Message: err.Error()}
	}
	tr, err := r.transport()
	if err != nil {
		return nil, err
	}
	limits := newQuotaTransport(throttleTransport{base: tr, t: throttleOf(r)}, u, r.Username, policy.MaxRetryAfter)
	rt := retry.NewTransport(limits)
	rt.Policy = func() retry.Policy { return policy }
	client := &auth.Client{
		Client: &http.Client{Transport: targetTransport{retryAfterTransport{rt}}},
		Cache:  auth.NewCache(),
		Header: http.Header{"User-Agent": {"mooring"}},
	}
	if r.Username != "" {
		client.Credential = auth.StaticCredential(u.Host, auth.Credential{Username: r.Username, Password: r.Password})
	}
	ref := registry.Reference{Registry: u.Host, Repository: r.Upstream()}
	repo := &orasremote.Repository{
		Client:             client,
		Reference:          ref,
		PlainHTTP:          u.Scheme == "http",
		ManifestMediaTypes: content.ManifestMediaTypes,
		MaxMetadataBytes:   content.MaxManifestSize,
	}
	// ref.Host maps docker.io to registry-1.docker.io, as oras-go's own
	// requests do.
	return &upstream{repo: repo, client: client, policy: policy, base: u.Scheme + "://" + ref.Host(), limits: limits}, nil
}

// transport builds the HTTP transport the remote's TLS and proxy settings
// ask for.
func (r *Remote) transport() (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = dialContext() // Targets apply to every connection
	tr.MaxIdleConnsPerHost = max(r.DownloadConcurrency, 2)
	tr.ResponseHeaderTimeout = 2 * time.Minute
	cfg := &tls.Config{InsecureSkipVerify: r.InsecureSkipVerify} //nolint:gosec // the user's choice, ssl_validation=false
	if r.SSLCACertificate != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM([]byte(r.SSLCACertificate)) {
			return nil, &errdef.FieldError{Field: "ssl_ca_certificate", Message: "holds no PEM certificate"}
		}
		cfg.RootCAs = pool
	}
	if r.SSLClientCertificate != "" {
		cert, err := tls.X509KeyPair([]byte(r.SSLClientCertificate), []byte(r.SSLClientKey))
		if err != nil {
			return nil, &errdef.FieldError{Field: "ssl_client_key", Message: err.Error()}
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	tr.TLSClientConfig = cfg
	if r.ProxyURL != "" {
		p, err := url.Parse(r.ProxyURL)
		if err != nil {
			return nil, &errdef.FieldError{Field: "proxy_url", Message: err.Error()}
		}
		tr.Proxy = http.ProxyURL(p)
	}
	return tr, nil
}

// attempt runs fn until it succeeds, fails for good, or the policy's
// attempts run out, waiting between tries.
func (u *upstream) attempt(ctx context.Context, fn func() error) error {
	var err error
	for i := 0; ; i++ {
		if err = fn(); err == nil || !retryable(err) || i+1 >= u.policy.Attempts || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(u.policy.wait(i)):
		}
	}
}

// tags lists every tag, following Link pagination.
func (u *upstream) tags(ctx context.Context) ([]string, error) {
	var tags []string
	err := u.attempt(ctx, func() error {
		tags = tags[:0]
		err := u.repo.Tags(ctx, "", func(page []string) error {
			tags = append(tags, page...)
			return nil
		})
		// oras-go reports a page it cannot decode as a plain error.
		if err != nil && strings.Contains(err.Error(), "failed to decode response") {
			err = fmt.Errorf("%w: %w", errCorrupt, err)
		}
		return err
	})
	return tags, err
}

// head resolves a tag to its descriptor with a HEAD request.
func (u *upstream) head(ctx context.Context, tag string) (digest.Digest, error) {
	var d digest.Digest
	err := u.attempt(ctx, func() error {
		desc, err := u.repo.Resolve(ctx, tag)
		d = desc.Digest
		return err
	})
	return d, err
}

// manifest fetches a manifest or manifest list by tag or digest and
// parses it. A body that does not hash to the digest the registry states
// (or, by digest, to the digest asked for) is discarded and fetched again.
func (u *upstream) manifest(ctx context.Context, reference string) (content.Document, error) {
	var doc content.Document
	err := u.attempt(ctx, func() error {
		desc, rc, err := u.repo.FetchReference(ctx, reference)
		if err != nil {
			return err
		}
		raw, err := io.ReadAll(io.LimitReader(rc, content.MaxManifestSize+1))
		rc.Close()
		if err != nil {
			return err
		}
		want := desc.Digest
		if d, err := digest.Parse(reference); err == nil {
			want = d
		}
		doc, err = parseFetched(desc.MediaType, raw, want)
		return err
	})
	return doc, err
}

// parseFetched parses a fetched manifest that should have digest want.
// Registries state the digest of a signed schema 1 manifest either as that
// of its payload (CNCF distribution) or of the bytes served (some others);
// either is accepted.
func parseFetched(mediaType string, raw []byte, want digest.Digest) (content.Document, error) {
	if want == "" {
		return content.Parse(mediaType, raw)
	}
	if err := want.Validate(); err != nil {
		return nil, fmt.Errorf("registry stated digest %q: %w", want, err)
	}
	if want.Algorithm().FromBytes(raw) == want {
		return content.Parse(mediaType, raw)
	}
	doc, err := content.ParseDigest(mediaType, raw, want)
	if err != nil {
		// Not the stated digest, whatever the cause (a flipped byte may
		// also break the JSON): the body is corrupt.
		return nil, fmt.Errorf("%w: %d bytes do not hash to %s: %v", errCorrupt, len(raw), want, err)
	}
	return doc, nil
}

// blob streams blob d of the given size (negative if unknown) into dst,
// which verifies digest and size as the bytes arrive. A broken, truncated
// or corrupt body is discarded and the download starts over.
func (u *upstream) blob(ctx context.Context, dst storage.Putter, d digest.Digest, size int64) error {
	return u.attempt(ctx, func() error {
		req, err := u.blobRequest(ctx, d)
		if err != nil {
			return err
		}
		resp, err := u.client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusNotFound:
			return fmt.Errorf("GET %s: %w", req.URL, orasdef.ErrNotFound)
		default:
			return statusError(resp)
		}
		if size >= 0 && resp.ContentLength >= 0 && resp.ContentLength != size {
			return fmt.Errorf("%w: Content-Length %d, expected %d", errCorrupt, resp.ContentLength, size)
		}
		return dst.Put(ctx, d, size, resp.Body)
	})
}

// blobRequest is a GET of blob d, with the scope the auth client asks a
// token for.
func (u *upstream) blobRequest(ctx context.Context, d digest.Digest) (*http.Request, error) {
	ref := u.repo.Reference
	ref.Reference = d.String()
	ctx = auth.AppendRepositoryScope(ctx, ref, auth.ActionPull)
	return http.NewRequestWithContext(ctx, http.MethodGet, u.base+"/v2/"+ref.Repository+"/blobs/"+d.String(), nil)
}

// statusError describes an unexpected response, with the registry's error
// message when it sent one.
func statusError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	msg := strings.TrimSpace(string(bytes.ToValidUTF8(body, nil)))
	if msg == "" {
		return &statusErr{status: resp.StatusCode, msg: fmt.Sprintf("%s %s: %s", resp.Request.Method, resp.Request.URL, resp.Status)}
	}
	return &statusErr{status: resp.StatusCode, msg: fmt.Sprintf("%s %s: %s: %s", resp.Request.Method, resp.Request.URL, resp.Status, msg)}
}
