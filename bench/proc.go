package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mooring-dev/mooring/internal/testproc"
)

// FreeAddr returns a loopback address nothing listens on now, for a server
// a benchmark starts; it exits the program if there is none.
func FreeAddr() string {
	addr, err := testproc.FreeAddr()
	if err != nil {
		log.Fatal(err)
	}
	return addr
}

// NumCPU returns the number of CPUs nproc reports (those this process may
// use), or 0 if it cannot be run.
func NumCPU() int {
	out, err := exec.Command("nproc").Output()
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

// WaitHTTP polls url with GET every 50ms until it answers with any status
// or timeout passes, and reports whether it answered.
func WaitHTTP(url string, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return true
		}
	}
	return false
}

// ResetPeakRSS resets the peak RSS (VmHWM) of process proc, a pid or
// "self", through /proc/<proc>/clear_refs. Linux only.
func ResetPeakRSS(proc string) error {
	return os.WriteFile("/proc/"+proc+"/clear_refs", []byte("5"), 0)
}

// ProcStatus returns a field of /proc/<proc>/status in KiB, proc being a
// pid or "self", such as "VmHWM", the peak RSS. Linux only.
func ProcStatus(proc, field string) (int64, error) {
	name := "/proc/" + proc + "/status"
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in %s", field, name)
}

// Median returns the middle value of xs (the upper one of an even count),
// leaving xs as it is.
func Median[T cmp.Ordered](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// Client calls Mooring's REST API as the admin user; a failed call exits
// the program.
type Client struct {
	Base     string // http://host:port
	Password string // the admin's
}

// Do sends body, if any, as JSON and returns the decoded JSON answer.
func (c *Client) Do(method, path string, body any) map[string]any {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.Base+path, rd)
	req.SetBasicAuth("admin", c.Password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 || json.Unmarshal(raw, &out) != nil {
		log.Fatalf("%s %s: %s %s", method, path, resp.Status, raw)
	}
	return out
}

// Post is Do with POST.
func (c *Client) Post(path string, body any) map[string]any { return c.Do("POST", path, body) }

// Get is Do with GET and no body.
func (c *Client) Get(path string) map[string]any { return c.Do("GET", path, nil) }

// WaitUp waits up to 30s for path to answer and exits the program if it
// does not.
func (c *Client) WaitUp(path string) {
	if !WaitHTTP(c.Base+path, 30*time.Second) {
		log.Fatal("Mooring did not start within 30s")
	}
}
