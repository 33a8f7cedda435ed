package train

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestBatchLogProgress: in a batch log (not a terminal) the status of a long phase becomes
// a plain line once the log has been quiet for logQuiet — here at once — so warmup epochs
// and MCT updates show; with the default 30 s a short run prints only its permanent lines.
func TestBatchLogProgress(t *testing.T) {
	dir, views, _ := synthImport(t, 1, 0)
	run := func(quiet bool) string {
		t.Helper()
		cfg := tinyRun(t, "mct", dir, views[:2], 1)
		cfg.WarmupEpochs, cfg.Epochs, cfg.Quiet = 3, 1, false
		if quiet {
			defer func(d time.Duration) { logQuiet = d }(logQuiet)
			logQuiet = 0
		}
		var log bytes.Buffer
		if _, err := Run(context.Background(), cfg, &log); err != nil {
			t.Fatal(err)
		}
		return log.String()
	}
	chatty := run(true)
	for _, want := range []string{"] warmup epoch 1 (of at most 3): view v0 val acc 0.", "] warmup epoch 3 (of at most 3): view v0 val acc", "] mct epoch 1: update 1/"} {
		if !strings.Contains(chatty, want) {
			t.Errorf("batch log without %q:\n%s", want, chatty)
		}
	}
	if plain := run(false); strings.Contains(plain, "warmup epoch") || strings.Contains(plain, "update 1/") {
		t.Errorf("a short run's batch log shows status lines:\n%s", plain)
	}
}
