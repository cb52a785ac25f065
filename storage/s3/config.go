package s3

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// Part sizes, bounded by S3's limits on multipart uploads ("Amazon S3
// multipart upload limits": parts of 5 MiB to 5 GiB, the last one
// excepted, and at most 10,000 of them).
const (
	// DefaultPartSize is the part size when Config.PartSize is zero. A Put
	// holds at most two parts in memory (one being read, one being sent),
	// so twice it is about the most memory one Put of a large blob uses.
	DefaultPartSize = 16 << 20
	// MinPartSize is the smallest part size S3 accepts.
	MinPartSize = 5 << 20
	// MaxPartSize is the largest part size S3 accepts.
	MaxPartSize = 5 << 30
	// maxParts is the most parts one upload may have.
	maxParts = 10_000
)

// Config says where a Driver keeps its blobs and how it reaches them.
type Config struct {
	// Bucket is the bucket the blobs are kept in. It must exist. Required.
	Bucket string
	// Prefix, if set, is a key prefix under which the driver keeps
	// everything, so that several stores can share a bucket. Leading and
	// trailing slashes are ignored.
	Prefix string
	// Endpoint is the S3 service: "host[:port]" or a URL with scheme http
	// or https and no path, such as "http://127.0.0.1:7070". Empty means
	// Amazon S3 (s3.amazonaws.com). A host without a scheme is reached over
	// HTTPS unless PlainHTTP is set.
	Endpoint string
	// Region is the bucket's region. Empty means $AWS_REGION, then
	// $AWS_DEFAULT_REGION; if those are empty too the region is asked of
	// the service (GetBucketLocation) on first use.
	Region string
	// AccessKey and SecretKey are the static credentials to sign requests
	// with, and SessionToken the token that goes with temporary ones. If
	// both keys are empty the credentials come from $AWS_ACCESS_KEY_ID,
	// $AWS_SECRET_ACCESS_KEY and $AWS_SESSION_TOKEN, then from the shared
	// credentials file (~/.aws/credentials), then from the EC2/ECS
	// instance role.
	AccessKey, SecretKey, SessionToken string
	// PathStyle forces path-style requests (http://host/bucket/key). By
	// default Amazon S3 gets virtual-host-style requests and other
	// endpoints path-style ones, which is what S3-compatible servers
	// usually want.
	PathStyle bool
	// PlainHTTP makes a scheme-less Endpoint be reached over HTTP rather
	// than HTTPS. An "http://" Endpoint implies it.
	PlainHTTP bool
	// InsecureSkipVerify accepts any TLS certificate from the endpoint. For
	// tests and self-signed setups only.
	InsecureSkipVerify bool
	// PartSize is the size of the parts of a multipart upload, and the size
	// up to which a blob is sent in a single PUT: between MinPartSize and
	// MaxPartSize; zero means DefaultPartSize. A Put of a larger blob
	// holds two parts in memory. A blob of known size too large for 10,000
	// parts is sent in parts of size/10,000 instead.
	PartSize int64
}

// ParseURL parses a storage URL of the form
//
//	s3://BUCKET[/PREFIX][?endpoint=URL&region=REGION&pathstyle=BOOL&insecure=BOOL&partsize=BYTES]
//
// into a Config, as the server's -storage flag takes it. endpoint is an
// Endpoint such as http://127.0.0.1:7070; insecure sets InsecureSkipVerify;
// partsize is in bytes. Credentials are not taken from the URL, which tends
// to end up in process listings and logs: they come from the environment
// (see Config.AccessKey). Unknown parameters are an error, so that a typo
// is not silently ignored.
func ParseURL(s string) (Config, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Config{}, fmt.Errorf("s3: storage URL: %w", err)
	}
	if u.Scheme != "s3" {
		return Config{}, fmt.Errorf("s3: storage URL %q: scheme must be s3", s)
	}
	if u.User != nil {
		return Config{}, fmt.Errorf("s3: storage URL %q: credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", u.Redacted())
	}
	if u.Opaque != "" || u.Host == "" {
		return Config{}, fmt.Errorf("s3: storage URL %q: want s3://BUCKET[/PREFIX]", s)
	}
	if u.Fragment != "" {
		return Config{}, fmt.Errorf("s3: storage URL %q: unexpected fragment", s)
	}
	c := Config{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Config{}, fmt.Errorf("s3: storage URL %q: %w", s, err)
	}
	for name, values := range q {
		if len(values) != 1 {
			return Config{}, fmt.Errorf("s3: storage URL %q: parameter %s given %d times", s, name, len(values))
		}
		v := values[0]
		switch name {
		case "endpoint":
			c.Endpoint = v
		case "region":
			c.Region = v
		case "pathstyle", "insecure":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return Config{}, fmt.Errorf("s3: storage URL %q: %s=%q is not a boolean", s, name, v)
			}
			if name == "pathstyle" {
				c.PathStyle = b
			} else {
				c.InsecureSkipVerify = b
			}
		case "partsize":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return Config{}, fmt.Errorf("s3: storage URL %q: partsize=%q is not a number of bytes", s, v)
			}
			c.PartSize = n
		default:
			return Config{}, fmt.Errorf("s3: storage URL %q: unknown parameter %q", s, name)
		}
	}
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// withDefaults returns c with the environment's defaults filled in and the
// prefix cleaned.
func (c Config) withDefaults() Config {
	c.Prefix = strings.Trim(c.Prefix, "/")
	if c.Region == "" {
		c.Region = os.Getenv("AWS_REGION")
	}
	if c.Region == "" {
		c.Region = os.Getenv("AWS_DEFAULT_REGION")
	}
	if c.PartSize == 0 {
		c.PartSize = DefaultPartSize
	}
	return c
}

// validate checks what can be checked without the network.
func (c Config) validate() error {
	if c.Bucket == "" {
		return errors.New("s3: no bucket")
	}
	if c.PartSize != 0 && (c.PartSize < MinPartSize || c.PartSize > MaxPartSize) {
		return fmt.Errorf("s3: part size %d out of range [%d, %d]", c.PartSize, MinPartSize, MaxPartSize)
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		return errors.New("s3: give both an access key and a secret key, or neither")
	}
	if p := strings.Trim(c.Prefix, "/"); p != "" {
		for seg := range strings.SplitSeq(p, "/") {
			if seg == "" || seg == "." || seg == ".." {
				return fmt.Errorf("s3: prefix %q has an empty, . or .. segment", c.Prefix)
			}
		}
	}
	_, _, err := c.endpoint()
	return err
}

// endpoint returns the host[:port] to give the client and whether to use
// TLS.
func (c Config) endpoint() (host string, secure bool, err error) {
	e := c.Endpoint
	if e == "" {
		if c.PlainHTTP {
			return "", false, errors.New("s3: PlainHTTP needs an Endpoint; Amazon S3 is reached over HTTPS")
		}
		return "s3.amazonaws.com", true, nil
	}
	if !strings.Contains(e, "://") {
		if strings.ContainsAny(e, "/?#@") {
			return "", false, fmt.Errorf("s3: endpoint %q: want host[:port] or a URL", e)
		}
		return e, !c.PlainHTTP, nil
	}
	u, err := url.Parse(e)
	if err != nil {
		return "", false, fmt.Errorf("s3: endpoint: %w", err)
	}
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", false, fmt.Errorf("s3: endpoint %q: want scheme://host[:port] with nothing after", e)
	}
	switch u.Scheme {
	case "http":
		return u.Host, false, nil
	case "https":
		if c.PlainHTTP {
			return "", false, fmt.Errorf("s3: endpoint %q is https but PlainHTTP is set", e)
		}
		return u.Host, true, nil
	default:
		return "", false, fmt.Errorf("s3: endpoint %q: scheme must be http or https", e)
	}
}
