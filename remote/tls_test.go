package remote_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	urlpkg "net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mooring-dev/mooring/internal/dbtest"
	"github.com/mooring-dev/mooring/internal/regtest"
	"github.com/mooring-dev/mooring/remote"
)

// TestSyncTLS: certificate validation, a private CA, turning validation
// off, and client certificates.
func TestSyncTLS(t *testing.T) {
	h := regtest.InProcessHandler()
	host := strings.TrimPrefix(serve(t, h), "http://")
	pushSample(t, host, "team/app")
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))

	clientCert, clientKey := selfSigned(t)
	pool := x509.NewCertPool()
	block, _ := pem.Decode([]byte(clientCert))
	cert, _ := x509.ParseCertificate(block.Bytes)
	pool.AddCert(cert)
	mtls := httptest.NewUnstartedServer(h)
	mtls.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	mtls.StartTLS()
	t.Cleanup(mtls.Close)

	f := newFixture(t, dbtest.Open(t, "sqlite"))
	for _, tc := range []struct {
		name string
		url  string
		edit func(r *remote.Remote)
		fail string
	}{
		{"untrusted", srv.URL, func(r *remote.Remote) {}, "certificate"},
		{"private CA", srv.URL, func(r *remote.Remote) { r.SSLCACertificate = caPEM }, ""},
		{"validation off", srv.URL, func(r *remote.Remote) { r.InsecureSkipVerify = true }, ""},
		{"no client certificate", mtls.URL, func(r *remote.Remote) { r.InsecureSkipVerify = true }, "certificate"},
		{"client certificate", mtls.URL, func(r *remote.Remote) {
			r.InsecureSkipVerify = true
			r.SSLClientCertificate, r.SSLClientKey = clientCert, clientKey
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := remote.New("tls", tc.url, "team/app")
			tc.edit(r)
			res, err := f.syncer.Sync(context.Background(), r, f.repoID, remote.SyncOptions{})
			switch {
			case tc.fail == "" && err != nil:
				t.Errorf("Sync: %v", err)
			case tc.fail == "" && res.Tags != 3:
				t.Errorf("synced %d tags, want 3", res.Tags)
			case tc.fail != "" && (err == nil || !strings.Contains(err.Error(), tc.fail)):
				t.Errorf("err = %v, want one mentioning %q", err, tc.fail)
			}
		})
	}
}

func TestSyncProxy(t *testing.T) {
	host, url, _ := upstream(t)
	pushSample(t, host, "team/app")
	var proxied atomic.Int64
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		proxied.Add(1)
		pr.SetURL(&urlpkg.URL{Scheme: "http", Host: pr.In.URL.Host})
	}}
	f := newFixture(t, dbtest.Open(t, "sqlite"))
	r := remote.New("via-proxy", url, "team/app")
	r.ProxyURL = serve(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !req.URL.IsAbs() {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		proxy.ServeHTTP(w, req)
	}))
	if res := f.sync(t, r, remote.SyncOptions{}); res.Tags != 3 {
		t.Errorf("synced %d tags", res.Tags)
	}
	if proxied.Load() < 10 {
		t.Errorf("%d requests went through the proxy", proxied.Load())
	}
}

// selfSigned returns a PEM client certificate and key.
func selfSigned(t *testing.T) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mooring-test-client"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}
