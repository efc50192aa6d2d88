package image

import (
	"log/slog"
	"sync"
	"time"
)

// LogProgress returns a progress func that logs a pull's progress once it
// has taken longer than a moment, then at most once per interval, and
// each layer once it is done: quick pulls stay quiet, slow ones show how
// far they got.
func LogProgress(log *slog.Logger, interval time.Duration) func(Progress) {
	var mu sync.Mutex
	start := time.Now()
	var last time.Time
	return func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if now.Sub(start) < interval {
			return
		}
		if !p.Done && now.Sub(last) < interval {
			return
		}
		last = now
		log.Info("pulling image", "ref", p.Ref, "layer", p.Layer, "bytes", p.Complete, "total", p.Total, "done", p.Done)
	}
}
