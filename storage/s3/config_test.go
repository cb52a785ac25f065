package s3_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mooring-dev/mooring/storage/s3"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want s3.Config
	}{
		{"s3://bucket", s3.Config{Bucket: "bucket"}},
		{"s3://bucket/", s3.Config{Bucket: "bucket"}},
		{"s3://bucket/a/b/", s3.Config{Bucket: "bucket", Prefix: "a/b"}},
		{"s3://bucket?endpoint=http://127.0.0.1:7070&region=us-east-1",
			s3.Config{Bucket: "bucket", Endpoint: "http://127.0.0.1:7070", Region: "us-east-1"}},
		{"s3://b/p?endpoint=minio.internal:9000&pathstyle=true&insecure=1&partsize=33554432",
			s3.Config{Bucket: "b", Prefix: "p", Endpoint: "minio.internal:9000", PathStyle: true, InsecureSkipVerify: true, PartSize: 32 << 20}},
		{"s3://b?endpoint=https%3A%2F%2Fs3.example.com&pathstyle=false",
			s3.Config{Bucket: "b", Endpoint: "https://s3.example.com"}},
	} {
		got, err := s3.ParseURL(tc.in)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "scheme"},
		{"file:///var/lib/mooring", "scheme"},
		{"s3:bucket", "want s3://BUCKET"},
		{"s3:///prefix", "want s3://BUCKET"},
		{"s3://key:secret@bucket", "credentials"},
		{"s3://bucket?region=a&region=b", "2 times"},
		{"s3://bucket?regoin=us-east-1", "unknown parameter"},
		{"s3://bucket?pathstyle=maybe", "boolean"},
		{"s3://bucket?partsize=16MiB", "number of bytes"},
		{"s3://bucket?partsize=1024", "part size"},
		{"s3://bucket?endpoint=ftp://host", "scheme must be http or https"},
		{"s3://bucket?endpoint=http://host/path", "nothing after"},
		{"s3://bucket/a//b", "prefix"},
		{"s3://bucket/a/../b", "prefix"},
		{"s3://bucket#frag", "fragment"},
		{"s3://bucket?%zz", "invalid URL escape"},
	} {
		_, err := s3.ParseURL(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseURL(%q) = %v, want an error with %q", tc.in, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseURL(%q) error %q shows the secret", tc.in, err)
		}
	}
}

// Whatever ParseURL accepts names a bucket and a valid prefix.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"s3://bucket/a/b?endpoint=http://127.0.0.1:7070&region=us-east-1",
		"s3://b?pathstyle=1&insecure=0&partsize=5242880",
		"s3://b/../x", "s3://:@/", "s3://b?endpoint=https://h:1/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := s3.ParseURL(s)
		if err != nil {
			return
		}
		if c.Bucket == "" {
			t.Errorf("ParseURL(%q) accepted no bucket", s)
		}
		for seg := range strings.SplitSeq(c.Prefix, "/") {
			if c.Prefix != "" && (seg == "" || seg == "." || seg == "..") {
				t.Errorf("ParseURL(%q) accepted prefix %q", s, c.Prefix)
			}
		}
	})
}

func ExampleParseURL() {
	cfg, err := s3.ParseURL("s3://mirror/prod?endpoint=http://127.0.0.1:7070&region=us-east-1")
	if err != nil {
		panic(err)
	}
	fmt.Printf("bucket %s, prefix %s, endpoint %s, region %s\n", cfg.Bucket, cfg.Prefix, cfg.Endpoint, cfg.Region)
	// Output: bucket mirror, prefix prod, endpoint http://127.0.0.1:7070, region us-east-1
}
