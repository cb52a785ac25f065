package registryapi

import (
	"io"
	"net/http"
	"time"
)

// Defaults of Options.MinBodyRate and Options.BodyWindow.
const (
	DefaultMinBodyRate = 1 << 10
	DefaultBodyWindow  = 30 * time.Second
)

// GuardBody makes r's body fail, and its connection close, when it
// arrives slower than minRate bytes per second over any window: each
// window must bring minRate*window bytes, else the read deadline set at
// its start expires. Uploads at any real speed pass; a client trickling a
// byte every few seconds cannot hold a connection open (a slowloris). It
// returns the function to call when the handler is done: it clears the
// deadline when the body was read to its end, so that the connection
// serves its next request; otherwise the deadline stays, so that net/http,
// which reads what is left of a body before it answers, cannot be held by
// the trickle either.
func GuardBody(w http.ResponseWriter, r *http.Request, minRate int64, window time.Duration) (done func()) {
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(window)) != nil {
		return func() {} // not supported by this connection: leave it
	}
	b := &minRateBody{ReadCloser: r.Body, rc: rc, need: max(1, int64(float64(minRate)*window.Seconds())), window: window}
	r.Body = b
	return func() {
		if b.eof {
			rc.SetReadDeadline(time.Time{})
		}
	}
}

type minRateBody struct {
	io.ReadCloser
	rc     *http.ResponseController
	need   int64 // bytes each window must bring
	got    int64
	window time.Duration
	eof    bool
}

func (b *minRateBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.eof = b.eof || err == io.EOF
	if b.got += int64(n); b.got >= b.need {
		b.got = 0
		b.rc.SetReadDeadline(time.Now().Add(b.window))
	}
	return n, err
}
