package httprecover

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// answer500 is the OnPanic of these tests: it records what it saw and
// answers 500 when it still can.
type answer500 struct {
	got     []Panic
	started []bool
}

func (a *answer500) onPanic(w http.ResponseWriter, r *http.Request, p Panic, started bool) {
	a.got = append(a.got, p)
	a.started = append(a.started, started)
	if !started {
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
}

func TestPanicBeforeResponseIsAnswered500(t *testing.T) {
	var a answer500
	h := Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	}), a.onPanic)
	srv := httptest.NewServer(h)
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatalf("request got no answer: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", resp.StatusCode)
	}
	if len(a.got) != 1 || a.got[0].Value != "boom" || a.started[0] {
		t.Fatalf("OnPanic saw %+v started=%v, want one panic \"boom\" before the response", a.got, a.started)
	}
	if !strings.Contains(string(a.got[0].Stack), "TestPanicBeforeResponseIsAnswered500") {
		t.Fatalf("stack does not show the panicking handler:\n%s", a.got[0].Stack)
	}
}

func TestPanicAfterResponseStartedAbortsConnection(t *testing.T) {
	var a answer500
	h := Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic(errors.New("late boom"))
	}), a.onPanic)
	srv := httptest.NewServer(h)
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("body read to the end without error: a truncated response looked complete")
	}
	if len(a.started) != 1 || !a.started[0] {
		t.Fatalf("OnPanic started=%v, want one call with the response started", a.started)
	}
}

func TestAbortHandlerPassesThrough(t *testing.T) {
	var a answer500
	h := Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic(http.ErrAbortHandler)
	}), a.onPanic)
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Fatalf("recovered %v, want http.ErrAbortHandler re-raised", v)
		}
		if len(a.got) != 0 {
			t.Fatalf("OnPanic called for a deliberate abort: %+v", a.got)
		}
	}()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	t.Fatal("ServeHTTP returned: the abort was swallowed")
}

func TestWriterKeepsOptionalInterfaces(t *testing.T) {
	var flushed, hijackable bool
	h := Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, flushed = w.(http.Flusher)
		_, hijackable = w.(http.Hijacker)
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("ResponseController.Flush through the writer: %v", err)
		}
	}), (&answer500{}).onPanic)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if !flushed || !hijackable {
		t.Fatalf("Flusher=%v Hijacker=%v, want both", flushed, hijackable)
	}
}
