package remote

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mooring-dev/mooring/content/errdef"
)

// Targets restrict the addresses remotes may connect to (upstream
// registries, their token services and blob redirects, proxies), checked
// on the address actually dialled, after name resolution, so that a name
// resolving to a forbidden address is refused too. An address in Deny is
// refused; with Allow not empty, so is one in none of Allow's networks.
type Targets struct {
	Allow []netip.Prefix
	Deny  []netip.Prefix
	// AllowHosts and DenyHosts do the same for the host names requests
	// are made to (a name, or "*.example.com" for every name under it),
	// before resolution and through proxies too.
	AllowHosts []string
	DenyHosts  []string
}

// ParseHosts reads a comma-separated list of host names and "*.suffix"
// patterns.
func ParseHosts(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.ToLower(strings.TrimSpace(part)); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func hostMatches(patterns []string, host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, p := range patterns {
		if p == host || strings.HasPrefix(p, "*.") && strings.HasSuffix(host, p[1:]) {
			return true
		}
	}
	return false
}

// checkHost refuses a request to host when the Targets' host lists forbid
// it; a host that is an address is left to check.
func (t *Targets) checkHost(host string) error {
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if hostMatches(t.DenyHosts, host) {
		return errdef.New(errdef.ErrDenied, "connecting to %s is not allowed (denied host)", host)
	}
	if len(t.AllowHosts) > 0 && !hostMatches(t.AllowHosts, host) {
		return errdef.New(errdef.ErrDenied, "connecting to %s is not allowed (not an allowed host)", host)
	}
	return nil
}

// targetTransport refuses requests to hosts the Targets forbid, before
// they are sent: redirects and token services included.
type targetTransport struct{ base http.RoundTripper }

func (t targetTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := targets.Load().checkHost(r.URL.Hostname()); err != nil {
		return nil, err
	}
	return t.base.RoundTrip(r)
}

// DefaultTargets refuses link-local addresses (169.254.0.0/16, fe80::/10),
// where cloud metadata services answer; everything else is allowed.
func DefaultTargets() *Targets {
	return &Targets{Deny: []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("fe80::/10")}}
}

// ParsePrefixes reads a comma-separated list of networks (CIDR) or single
// addresses.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		if p, err := netip.ParsePrefix(part); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a network (CIDR) nor an address", part)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

var targets atomic.Pointer[Targets]

func init() { targets.Store(DefaultTargets()) }

// RestrictTargets sets the Targets of every remote of this process; nil
// allows every address.
func RestrictTargets(t *Targets) {
	if t == nil {
		t = &Targets{}
	}
	targets.Store(t)
}

// check refuses addr when the Targets forbid it.
func (t *Targets) check(addr netip.Addr) error {
	addr = addr.Unmap()
	for _, p := range t.Deny {
		if p.Contains(addr) {
			return errdef.New(errdef.ErrDenied, "connecting to %s is not allowed (denied network %s)", addr, p)
		}
	}
	if len(t.Allow) == 0 {
		return nil
	}
	for _, p := range t.Allow {
		if p.Contains(addr) {
			return nil
		}
	}
	return errdef.New(errdef.ErrDenied, "connecting to %s is not allowed (in no allowed network)", addr)
}

// dialControl checks every connection a remote's transport makes.
func dialControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return err
	}
	return targets.Load().check(ap.Addr())
}

// dialer is the net.Dialer of remotes' transports.
func dialContext() func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Control: dialControl, Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return d.DialContext
}

// ParseTargets reads allow and deny lists of networks (CIDR), addresses,
// host names and "*.suffix" host patterns, comma-separated; deny starts
// from DefaultTargets' networks only when denyDefault is set.
func ParseTargets(allow, deny string) (*Targets, error) {
	t := &Targets{}
	for _, l := range []struct {
		s     string
		nets  *[]netip.Prefix
		hosts *[]string
	}{{allow, &t.Allow, &t.AllowHosts}, {deny, &t.Deny, &t.DenyHosts}} {
		for part := range strings.SplitSeq(l.s, ",") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			if p, err := ParsePrefixes(part); err == nil {
				*l.nets = append(*l.nets, p...)
				continue
			}
			if strings.ContainsAny(part, "/ ") {
				return nil, fmt.Errorf("%q is neither a network, an address nor a host name", part)
			}
			*l.hosts = append(*l.hosts, ParseHosts(part)...)
		}
	}
	return t, nil
}
